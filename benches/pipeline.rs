//! In-process benchmarks of the pure core on synthetic pages: normalizing the
//! v2 payloads into a snapshot, resolving the mapping, building the views,
//! rendering them, and the whole plan, at 1,000 clusters × 5,000 components
//! × 500 items; then how the plan grows with clusters and with items, and
//! with the items shown in one cluster.
//!
//! `cargo bench --bench pipeline` measures; `cargo test --all-targets` runs
//! every benchmark once on smaller pages (criterion's test mode), so CI
//! checks that they still work without paying for them.

// Benchmarks build their own scratch sites; `clippy.toml` bans these
// calls in the library, not here.
#![allow(clippy::disallowed_methods)]

#[path = "common/synth.rs"]
mod synth;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput};
use jiff::Timestamp;
use statusmotd::config::Config;
use statusmotd::model::{ItemKind, Snapshot, SnapshotIndex};
use statusmotd::pipeline::{self, Gathered, SourceData};
use statusmotd::render::{Renderer, ViewContext};
use statusmotd::source::v2;
use statusmotd::view::{self, ViewOptions};
use synth::Spec;

/// A page, its snapshot and the config that maps it.
struct Fixture {
    spec: Spec,
    payloads: [Vec<u8>; 3],
    config: Config,
    data: Gathered,
    now: Timestamp,
}

fn fixture(spec: Spec) -> Fixture {
    let now: Timestamp = "2026-03-10T12:00:00Z".parse().expect("fixed time");
    let page = synth::v2(&spec, now, "probe");
    let payloads = [
        page.summary.to_string().into_bytes(),
        page.incidents.to_string().into_bytes(),
        page.maintenances.to_string().into_bytes(),
    ];
    let snapshot = snapshot(&payloads);
    let toml = synth::mapping_toml(&spec, "https://status.example.org", "", "");
    let config = Config::parse(&toml, Path::new("/srv/motd/mapping.toml")).expect("mapping");
    let data = Gathered {
        sources: BTreeMap::from([(
            "synth".to_owned(),
            SourceData {
                snapshot: std::sync::Arc::new(snapshot),
                fetch_error: None,
            },
        )]),
        missing: BTreeMap::new(),
        known: std::sync::Arc::default(),
        calendar: std::sync::Arc::default(),
        indexes: BTreeMap::new(),
    };
    Fixture {
        spec,
        payloads,
        config,
        data,
        now,
    }
}

fn snapshot(payloads: &[Vec<u8>; 3]) -> Snapshot {
    v2::from_payloads(
        "https://status.example.org",
        &payloads[0],
        Some(&payloads[1]),
        Some(&payloads[2]),
    )
    .expect("synthetic payloads parse")
}

fn view_options(config: &Config) -> ViewOptions {
    ViewOptions {
        upcoming: config.settings.upcoming,
        recent_resolved: config.settings.recent_resolved,
        stale_after: config.settings.stale_after,
        page_wide: true,
        timezone: "UTC".into(),
    }
}

fn stages(c: &mut Criterion, spec: Spec) {
    let f = fixture(spec);
    let snap = &f.data.sources["synth"].snapshot;
    let clusters: Vec<_> = f.config.clusters.values().collect();
    let renderer = Renderer::new(None).expect("embedded templates");
    let opts = view_options(&f.config);
    // As `pipeline::plan` does: one index per snapshot for all clusters.
    let index = SnapshotIndex::new(snap);
    let label = format!(
        "{}x{}x{}",
        spec.clusters,
        spec.clusters * spec.per_cluster,
        spec.items
    );

    let mut g = c.benchmark_group("stages");
    g.sample_size(10);
    g.bench_function(BenchmarkId::new("parse_v2", &label), |b| {
        b.iter(|| snapshot(black_box(&f.payloads)));
    });
    g.bench_function(BenchmarkId::new("index", &label), |b| {
        b.iter(|| black_box(SnapshotIndex::new(snap)));
    });
    g.bench_function(BenchmarkId::new("map", &label), |b| {
        b.iter(|| {
            for cluster in &clusters {
                black_box(
                    statusmotd::mapping::resolve_indexed(cluster, snap, &index).expect("resolves"),
                );
            }
        });
    });
    let selections: Vec<_> = clusters
        .iter()
        .map(|cl| statusmotd::mapping::resolve_indexed(cl, snap, &index).expect("resolves"))
        .collect();
    g.bench_function(BenchmarkId::new("view", &label), |b| {
        b.iter(|| {
            for (cluster, selection) in clusters.iter().zip(&selections) {
                black_box(view::build_indexed(
                    &cluster.name,
                    "synth",
                    snap,
                    &index,
                    selection,
                    &opts,
                    f.now,
                ));
            }
        });
    });
    let views: Vec<_> = clusters
        .iter()
        .zip(&selections)
        .map(|(cl, sel)| view::build_indexed(&cl.name, "synth", snap, &index, sel, &opts, f.now))
        .collect();
    g.bench_function(BenchmarkId::new("render", &label), |b| {
        b.iter(|| {
            for v in &views {
                let ctx = ViewContext::new(v);
                black_box(renderer.render_in("motd.txt.j2", &ctx).expect("renders"));
                for item in v.items() {
                    black_box(renderer.render_item_in(&ctx, item).expect("renders"));
                }
            }
        });
    });
    // The same views in a zone of the time zone database (UTC is built
    // in): what `localtime` costs where a site sets its own zone.
    let zoned: Vec<_> = views
        .iter()
        .map(|v| {
            let mut v = v.clone();
            v.timezone = "Europe/London".into();
            v
        })
        .collect();
    g.bench_function(BenchmarkId::new("render_zoned", &label), |b| {
        b.iter(|| {
            for v in &zoned {
                let ctx = ViewContext::new(v);
                black_box(renderer.render_in("motd.txt.j2", &ctx).expect("renders"));
                for item in v.items() {
                    black_box(renderer.render_item_in(&ctx, item).expect("renders"));
                }
            }
        });
    });
    g.bench_function(BenchmarkId::new("plan", &label), |b| {
        b.iter_batched(
            || (),
            |()| pipeline::plan(&f.config, &renderer, &clusters, &f.data, f.now),
            BatchSize::LargeInput,
        );
    });
    g.finish();
}

fn plan_of(c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, f: &Fixture) {
    let clusters: Vec<_> = f.config.clusters.values().collect();
    let renderer = Renderer::new(None).expect("embedded templates");
    let work = (f.spec.clusters * f.spec.items) as u64;
    c.throughput(Throughput::Elements(work));
    c.bench_function(
        BenchmarkId::from_parameter(format!("{}x{}", f.spec.clusters, f.spec.items)),
        |b| {
            b.iter_batched(
                || (),
                |()| pipeline::plan(&f.config, &renderer, &clusters, &f.data, f.now),
                BatchSize::LargeInput,
            );
        },
    );
}

fn growth(c: &mut Criterion, clusters: &[usize], items: &[usize]) {
    let mut g = c.benchmark_group("growth_clusters");
    g.sample_size(10);
    for &n in clusters {
        plan_of(
            &mut g,
            &fixture(Spec {
                clusters: n,
                per_cluster: 5,
                items: 500,
            }),
        );
    }
    g.finish();
    let mut g = c.benchmark_group("growth_items");
    g.sample_size(10);
    for &n in items {
        plan_of(
            &mut g,
            &fixture(Spec {
                clusters: 1000,
                per_cluster: 5,
                items: n,
            }),
        );
    }
    g.finish();
}

/// One cluster whose view shows `n` open incidents, each its own: what a
/// broken or hostile page does to one render. The cost should grow with `n`
/// (the MOTD walks every item; snippets stop at `MAX_ITEM_FILES`), not with
/// its square.
fn one_cluster(c: &mut Criterion, sizes: &[usize]) {
    let mut g = c.benchmark_group("items_one_cluster");
    g.sample_size(10);
    for &n in sizes {
        let mut f = fixture(Spec {
            clusters: 1,
            per_cluster: 5,
            items: 100,
        });
        let snap = std::sync::Arc::make_mut(
            &mut f
                .data
                .sources
                .get_mut("synth")
                .expect("the fixture's source")
                .snapshot,
        );
        let open = snap
            .incidents
            .iter()
            .find(|i| i.kind == ItemKind::Incident && !i.is_closed() && !i.components.is_empty())
            .cloned()
            .expect("the synthetic page has an open incident");
        snap.incidents = (0..n)
            .map(|k| {
                let mut i = open.clone();
                i.id = format!("open{k}");
                i
            })
            .collect();
        let clusters: Vec<_> = f.config.clusters.values().collect();
        let renderer = Renderer::new(None).expect("embedded templates");
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(BenchmarkId::new("plan", n), |b| {
            b.iter(|| pipeline::plan(&f.config, &renderer, &clusters, &f.data, f.now));
        });
    }
    g.finish();
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` does not, and then every
    // benchmark runs once: small pages keep that cheap in a debug build.
    let measuring = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    if measuring {
        stages(
            &mut c,
            Spec {
                clusters: 1000,
                per_cluster: 5,
                items: 500,
            },
        );
        growth(&mut c, &[10, 100, 1000, 10_000], &[50, 500, 5000]);
        one_cluster(&mut c, &[1000, 5000]);
    } else {
        stages(
            &mut c,
            Spec {
                clusters: 20,
                per_cluster: 5,
                items: 50,
            },
        );
        one_cluster(&mut c, &[150]);
    }
    c.final_summary();
}
