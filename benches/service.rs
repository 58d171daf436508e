//! The service benchmarks: statusmotd as a build step and as `serve`,
//! against the fake Statuspage of the integration tests serving synthetic
//! pages, each figure beside a baseline measured in the same run (the Python
//! script and webhook hook in `benches/baseline/`, or the smallest size).
//!
//! `cargo bench --bench service -- [--quick] [FIGURE...]` runs the figures
//! named (all by default): `requests`, `oneshot`, `snapshot`, `growth`,
//! `webhook`, `burst`, `answer`, `notmodified`. Without `--bench` (as
//! `cargo test --all-targets` runs it) it only checks, on tiny pages, that
//! the harness still works. Timings are medians over repeated runs, with
//! the quartiles and the extremes, since the machines are shared.
//!
//! Tools: `python3` with `requests` and `jinja2` for the baseline (and
//! `python3` alone for CPU time, `benches/common/cpu_time.py`),
//! `/usr/bin/time` for peak memory, `wrk` for requests per second.
//! `scripts/bench` installs them. A figure whose tool is missing says so and
//! is skipped.

// Benchmarks build their own scratch sites; `clippy.toml` bans these
// calls in the library, not here.
#![allow(clippy::disallowed_methods)]
// Statistics over at most a few thousand samples: the casts between counts
// and floats lose nothing that matters.
#![allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

#[path = "../tests/it/support/fake.rs"]
mod fake;
#[path = "common/synth.rs"]
mod synth;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake::{FakeStatuspage, Fault};
use jiff::Timestamp;
use statusmotd::source::{self, conditional, Endpoint, FetchOptions};
use synth::Spec;

/// How much of everything to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `cargo test`: tiny pages, one repetition, no baseline.
    Smoke,
    /// `--quick`: every figure, briefly.
    Quick,
    Full,
}

struct Bench {
    mode: Mode,
    bin: PathBuf,
    /// `STATUSMOTD_BIN_BEFORE`: an older binary, timed beside `bin` in the
    /// same run where a figure supports it (`oneshot`, `snapshot`).
    before: Option<PathBuf>,
    python: Option<String>,
    wrk: bool,
    time: bool,
    /// `curl`, for the one-shot figure's process floor.
    curl: bool,
    baseline_dir: PathBuf,
}

impl Bench {
    fn reps(&self, full: usize, quick: usize) -> usize {
        match self.mode {
            Mode::Smoke => 1,
            Mode::Quick => quick,
            Mode::Full => full,
        }
    }

    /// 300 clusters in a real run, 10 in a smoke test.
    fn clusters(&self, n: usize) -> usize {
        if self.mode == Mode::Smoke {
            10
        } else {
            n
        }
    }
}

fn main() {
    if std::env::var_os(FETCHER).is_some() {
        fetcher();
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = if !args.iter().any(|a| a == "--bench") {
        Mode::Smoke
    } else if args.iter().any(|a| a == "--quick") {
        Mode::Quick
    } else {
        Mode::Full
    };
    let wanted: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bench = Bench {
        mode,
        bin: std::env::var_os("STATUSMOTD_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_statusmotd")),
            PathBuf::from,
        ),
        before: std::env::var_os("STATUSMOTD_BIN_BEFORE").map(PathBuf::from),
        python: (mode != Mode::Smoke).then(python).flatten(),
        wrk: mode != Mode::Smoke && tool_works("wrk", &["--version"]),
        time: Path::new("/usr/bin/time").exists(),
        curl: tool_works("curl", &["--version"]),
        baseline_dir: root.join("benches/baseline"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    println!("# statusmotd service benchmarks ({mode:?})");
    println!("# binary: {}", bench.bin.display());
    if bench.python.is_none() && mode != Mode::Smoke {
        println!("# python3 with requests and jinja2 not found: baseline figures skipped");
    }
    let all = [
        "requests",
        "oneshot",
        "snapshot",
        "growth",
        "webhook",
        "burst",
        "notmodified",
        "answer",
        "preview",
    ];
    for figure in all {
        if !wanted.is_empty() && !wanted.contains(&figure) {
            continue;
        }
        println!("\n## {figure}");
        let started = Instant::now();
        match figure {
            "requests" => runtime.block_on(requests(&bench)),
            "oneshot" => runtime.block_on(oneshot(&bench)),
            "snapshot" => snapshot(&bench, &[1000], true),
            "growth" => {
                let sizes: &[usize] = match mode {
                    Mode::Smoke => &[10],
                    Mode::Quick => &[10, 100, 1000],
                    Mode::Full => &[10, 100, 1000, 10_000],
                };
                snapshot(&bench, sizes, false);
            }
            "webhook" | "burst" | "notmodified" | "answer" | "preview" => {
                runtime.block_on(serve_figure(&bench, figure));
            }
            _ => unreachable!(),
        }
        println!("# ({figure} took {:.1}s)", started.elapsed().as_secs_f64());
    }
}

// ---------------------------------------------------------------- statistics

/// Median, quartiles and extremes of a sample.
struct Stats {
    n: usize,
    min: f64,
    p25: f64,
    median: f64,
    p75: f64,
    p99: f64,
    max: f64,
}

fn stats(mut xs: Vec<f64>) -> Stats {
    assert!(!xs.is_empty(), "no samples");
    xs.sort_by(f64::total_cmp);
    let q = |p: f64| {
        // Nearest rank: a quantile is a value that was measured.
        let rank = (p * xs.len() as f64).ceil().max(1.0) as usize;
        xs[rank.min(xs.len()) - 1]
    };
    Stats {
        n: xs.len(),
        min: xs[0],
        p25: q(0.25),
        median: q(0.5),
        p75: q(0.75),
        p99: q(0.99),
        max: xs[xs.len() - 1],
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn show(what: &str, unit: &str, s: &Stats) {
    println!(
        "{what}: median {:.2} {unit} (p25 {:.2}, p75 {:.2}, min {:.2}, max {:.2}, n={})",
        s.median, s.p25, s.p75, s.min, s.max, s.n
    );
}

// ---------------------------------------------------------------- helpers

fn tool_works(tool: &str, args: &[&str]) -> bool {
    Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A `python3` that can import the baseline's libraries.
fn python() -> Option<String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    Command::new(&python)
        .args(["-c", "import requests, jinja2"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()
        .filter(std::process::ExitStatus::success)
        .map(|_| python)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Serves `page` at the fake's v2 paths.
fn serve_v2(fake: &FakeStatuspage, page: synth::V2) {
    fake.set_json("/api/v2/summary.json", page.summary);
    fake.set_json("/api/v2/incidents.json", page.incidents);
    fake.set_json("/api/v2/scheduled-maintenances.json", page.maintenances);
}

/// A live page as the real API serves it: the 50 most recent items in the
/// history documents.
fn live_page(spec: &Spec, marker: &str) -> synth::V2 {
    synth::v2(spec, Timestamp::now(), marker).recent_only(50)
}

/// A scratch directory with a `mapping.toml` for `spec` and the baseline's
/// cluster table.
fn workdir(spec: &Spec, url: &str, settings: &str, server: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("statusmotd-bench-")
        // `BENCH_KEEP=1` leaves the work directories behind, to profile a
        // figure's commands by hand.
        .disable_cleanup(std::env::var_os("BENCH_KEEP").is_some())
        .tempdir_in(std::env::var_os("BENCH_TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from))
        .expect("temp dir");
    std::fs::write(
        dir.path().join("mapping.toml"),
        synth::mapping_toml(spec, url, settings, server),
    )
    .expect("write mapping.toml");
    std::fs::write(
        dir.path().join("clusters.json"),
        synth::baseline_clusters(spec),
    )
    .expect("write clusters.json");
    dir
}

/// Runs a command to completion and returns its wall time; panics when it
/// fails, since a figure of a failed run means nothing. The command runs
/// with the library path of the shell that started `cargo bench`
/// ([`without_cargo_library_paths`]).
fn timed(cmd: &mut Command) -> Duration {
    without_cargo_library_paths(cmd);
    let started = Instant::now();
    let out = cmd.output().expect("run command");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// `LD_LIBRARY_PATH` without what `cargo bench` put in front of it: the
/// target directory, build scripts' output directories and the toolchain's
/// libraries (`…/lib/rustlib/<target>/lib` and the `lib` three levels
/// above it). A program started with cargo's six directories first looks
/// for each of its shared libraries in each of them (126 failed `openat`s
/// before `main` for `statusmotd`, 0.35 ms; 300 for `curl`), which no build
/// step or shell pays; the in-process floor pays nothing of the kind.
fn without_cargo_library_paths(cmd: &mut Command) -> &mut Command {
    const VAR: &str = "LD_LIBRARY_PATH";
    let Some(paths) = std::env::var_os(VAR) else {
        return cmd;
    };
    let exe = std::env::current_exe().expect("the harness's path");
    // target/<profile>/deps/service-<hash>
    let target = exe.ancestors().nth(3).unwrap_or(Path::new("/nonexistent"));
    let paths: Vec<PathBuf> = std::env::split_paths(&paths).collect();
    let toolchain: Vec<&Path> = paths
        .iter()
        .filter(|p| {
            p.parent()
                .and_then(Path::parent)
                .is_some_and(|r| r.ends_with("lib/rustlib"))
        })
        .flat_map(|p| [p.as_path(), p.ancestors().nth(3).unwrap_or(p)])
        .collect();
    let kept: Vec<&PathBuf> = paths
        .iter()
        .filter(|p| !p.starts_with(target) && !toolchain.contains(&p.as_path()))
        .collect();
    if kept.is_empty() {
        cmd.env_remove(VAR)
    } else {
        cmd.env(
            VAR,
            std::env::join_paths(kept).expect("paths that were joined before"),
        )
    }
}

/// Runs a command under `/usr/bin/time` and returns its wall time and peak
/// resident memory in KiB.
fn timed_rss(bench: &Bench, cmd: &Command) -> (Duration, Option<u64>) {
    if !bench.time {
        let mut plain = Command::new(cmd.get_program());
        plain.args(cmd.get_args());
        return (timed(&mut plain), None);
    }
    let report = tempfile::NamedTempFile::new().expect("temp file");
    let mut wrapped = Command::new("/usr/bin/time");
    wrapped
        .args(["-f", "%M", "-o"])
        .arg(report.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    let took = timed(&mut wrapped);
    let kib = std::fs::read_to_string(report.path())
        .ok()
        .and_then(|t| t.trim().lines().last()?.trim().parse().ok());
    (took, kib)
}

// ---------------------------------------------------------------- requests

/// Upstream requests per refresh, v2 and v1, with and without paging.
async fn requests(bench: &Bench) {
    let client = source::client();
    let now = Timestamp::now();
    let opts = FetchOptions {
        resolved_since: now.checked_sub(jiff::SignedDuration::from_hours(24)).ok(),
        ..FetchOptions::default()
    };
    let sizes = [
        Spec {
            clusters: 10,
            per_cluster: 5,
            items: 50,
        },
        Spec {
            clusters: bench.clusters(1000),
            per_cluster: 5,
            items: 500,
        },
    ];
    for spec in sizes {
        let fake = FakeStatuspage::start().await;
        serve_v2(&fake, live_page(&spec, "x"));
        let v1 = synth::v1(&spec, now);
        let base = format!("/pages/{}", synth::PAGE_ID);
        for (path, list) in [
            ("components", v1.components),
            ("component-groups", v1.groups),
            ("incidents/unresolved", v1.unresolved),
            ("incidents/upcoming", v1.upcoming),
            ("incidents/active_maintenance", v1.active_maintenance),
            ("incidents", v1.incidents),
        ] {
            fake.set_json(&format!("{base}/{path}"), list);
        }
        let size = format!(
            "{} components, {} items",
            spec.clusters * spec.per_cluster,
            spec.items
        );
        let endpoint = Endpoint::Public { url: fake.url() };
        source::fetch(&client, &endpoint, &opts)
            .await
            .expect("v2 fetch");
        println!("v2 requests per refresh ({size}): {}", fake.requests());
        let before = fake.requests();
        let endpoint = Endpoint::Manage {
            api_base: fake.url(),
            page_id: synth::PAGE_ID.into(),
            api_key: "bench-key".into(),
        };
        source::fetch(&client, &endpoint, &opts)
            .await
            .expect("v1 fetch");
        let log = fake.request_log();
        let mut lists: BTreeMap<&str, usize> = BTreeMap::new();
        for line in &log[before..] {
            let path = line.split('?').next().unwrap_or(line);
            *lists
                .entry(path.rsplit_once(synth::PAGE_ID).map_or(path, |(_, p)| p))
                .or_default() += 1;
        }
        println!(
            "v1 requests per refresh ({size}): {} over {} lists {lists:?}",
            log.len() - before,
            lists.len()
        );
        // Asked again with the validators of a first answer, nothing
        // changed: as many requests, every one answered 304.
        fake.send_validators(fake::Validators::ETag, true);
        for (api, endpoint) in [
            ("v2", Endpoint::Public { url: fake.url() }),
            ("v1", endpoint),
        ] {
            let Ok(conditional::Outcome::Changed(_, prior)) =
                conditional::fetch(&client, &endpoint, &opts, None).await
            else {
                panic!("{api}: the first fetch reads the page");
            };
            let (before, asked) = (fake.requests(), fake.not_modified_answers());
            let again = conditional::fetch(&client, &endpoint, &opts, Some(&prior)).await;
            assert!(
                matches!(again, Ok(conditional::Outcome::Unchanged(_))),
                "{api}: {again:?}"
            );
            println!(
                "{api} conditional refresh, unchanged ({size}): {} requests, {} answered 304",
                fake.requests() - before,
                fake.not_modified_answers() - asked
            );
            // What a refresh costs read in full, and found unchanged: the
            // same requests, without parsing or sanitizing.
            let (mut full, mut unchanged) = (Vec::new(), Vec::new());
            for _ in 0..bench.reps(25, 9) {
                let started = Instant::now();
                let _ = conditional::fetch(&client, &endpoint, &opts, None).await;
                full.push(ms(started.elapsed()));
                let started = Instant::now();
                let _ = conditional::fetch(&client, &endpoint, &opts, Some(&prior)).await;
                unchanged.push(ms(started.elapsed()));
            }
            show(
                &format!("{api} refresh in full ({size})"),
                "ms",
                &stats(full),
            );
            show(
                &format!("{api} refresh found unchanged, 304 ({size})"),
                "ms",
                &stats(unchanged),
            );
        }
    }
}

// ---------------------------------------------------------------- oneshot

/// `statusmotd render` of 300 clusters fetching from the fake, as a build
/// step runs it, against the baseline script.
async fn oneshot(bench: &Bench) {
    let spec = Spec {
        clusters: bench.clusters(300),
        per_cluster: 5,
        items: 500,
    };
    let fake = FakeStatuspage::start().await;
    serve_v2(&fake, live_page(&spec, "x"));
    let dir = workdir(&spec, &fake.url(), "", "");
    let config = dir.path().join("mapping.toml");
    let reps = bench.reps(15, 5);
    let mut cold = Vec::new();
    let mut steady = Vec::new();
    let mut baseline = Vec::new();
    let mut before = Vec::new();
    let before_dir = workdir(&spec, &fake.url(), "", "");
    let mut floor = Vec::new();
    let mut process_floor = Vec::new();
    let mut curl_floor = Vec::new();
    let client = reqwest::Client::new();
    let render_of = |bin: &Path, config: &Path| {
        let mut cmd = Command::new(bin);
        cmd.arg("render").arg("--config").arg(config);
        cmd.stdout(Stdio::null());
        cmd
    };
    let run = || render_of(&bench.bin, &config);
    let before_config = before_dir.path().join("mapping.toml");
    if let Some(bin) = &bench.before {
        // Its first render fills its own output directory: not timed.
        tokio::task::block_in_place(|| timed(&mut render_of(bin, &before_config)));
    }
    for rep in 0..reps {
        // First the empty output directory: its 600 fsynced files slow
        // whatever runs right after them (by about 4 ms, measured with the
        // same binary in both places), so the runs compared below do not
        // come first, and take turns.
        let out = dir.path().join("out");
        let _ = std::fs::remove_dir_all(&out);
        // Blocking commands on a runtime thread: the fake answers on the
        // other worker.
        cold.push(ms(tokio::task::block_in_place(|| timed(&mut run()))));
        // The floor: the same three documents fetched once, in process,
        // bodies read and dropped.
        let started = Instant::now();
        let get = |doc: &str| {
            let url = format!("{}/api/v2/{doc}", fake.url());
            let client = client.clone();
            async move {
                client
                    .get(url)
                    .send()
                    .await
                    .expect("get")
                    .bytes()
                    .await
                    .expect("body")
            }
        };
        tokio::join!(
            get("summary.json"),
            get("incidents.json"),
            get("scheduled-maintenances.json")
        );
        floor.push(ms(started.elapsed()));
        let mut old = || {
            if let Some(bin) = &bench.before {
                let mut cmd = render_of(bin, &before_config);
                before.push(ms(tokio::task::block_in_place(|| timed(&mut cmd))));
            }
        };
        if rep % 2 == 0 {
            old();
            steady.push(ms(tokio::task::block_in_place(|| timed(&mut run()))));
        } else {
            steady.push(ms(tokio::task::block_in_place(|| timed(&mut run()))));
            old();
        }
        // The process floors: a new process that fetches the same three
        // documents once, on three connections at once as `render` does,
        // with the validators `render` sent, bodies dropped: this harness
        // with `render`'s HTTP client, and curl.
        let requests = floor_requests(&fake.url(), &dir.path().join("state"));
        let mut cmd = floor_process(&requests);
        process_floor.push(ms(tokio::task::block_in_place(|| timed(&mut cmd))));
        if bench.curl {
            let mut cmd = floor_curl(&requests);
            curl_floor.push(ms(tokio::task::block_in_place(|| timed(&mut cmd))));
        }
        if let Some(python) = &bench.python {
            let out = dir.path().join("out-baseline");
            let _ = std::fs::remove_dir_all(&out);
            let mut cmd = Command::new(python);
            cmd.arg(bench.baseline_dir.join("motd_baseline.py"))
                .arg(fake.url())
                .arg(dir.path().join("clusters.json"))
                .arg(&out);
            baseline.push(ms(tokio::task::block_in_place(|| timed(&mut cmd))));
        }
    }
    let n = spec.clusters;
    let (cold, steady) = (stats(cold), stats(steady));
    show(
        &format!("statusmotd render, {n} clusters, empty output dir"),
        "ms",
        &cold,
    );
    show(
        &format!("statusmotd render, {n} clusters, nothing changed"),
        "ms",
        &steady,
    );
    let floor = stats(floor);
    show(
        "floor: the three documents fetched once, in process (warm client)",
        "ms",
        &floor,
    );
    println!(
        "statusmotd vs floor, nothing changed: {:.2}x the in-process floor",
        steady.median / floor.median
    );
    let process_floor = stats(process_floor);
    show(
        "process floor: a new process (render's HTTP client) fetching the three documents once, same validators",
        "ms",
        &process_floor,
    );
    println!(
        "statusmotd vs process floor, nothing changed: {:.2}x the process floor",
        steady.median / process_floor.median
    );
    if curl_floor.is_empty() {
        println!("# curl not found: its process floor is skipped");
    } else {
        let curl_floor = stats(curl_floor);
        show(
            "process floor, curl: the three documents fetched once, same validators",
            "ms",
            &curl_floor,
        );
        println!(
            "statusmotd vs curl's process floor, nothing changed: {:.1}x",
            steady.median / curl_floor.median
        );
    }
    if !before.is_empty() {
        let before = stats(before);
        show(
            &format!("STATUSMOTD_BIN_BEFORE render, {n} clusters, nothing changed"),
            "ms",
            &before,
        );
        println!(
            "speedup over STATUSMOTD_BIN_BEFORE: {:.1}x",
            before.median / steady.median
        );
    }
    if !baseline.is_empty() {
        let baseline = stats(baseline);
        show(&format!("baseline script, {n} clusters"), "ms", &baseline);
        println!(
            "speedup (baseline median / statusmotd median): empty dir {:.1}x, nothing changed {:.1}x",
            baseline.median / cold.median,
            baseline.median / steady.median
        );
    }
}

/// Set in the environment of this harness run as the one-shot figure's
/// process floor ([`fetcher`]).
const FETCHER: &str = "STATUSMOTD_BENCH_FETCHER";

/// The process floor with `render`'s own HTTP stack: this harness started
/// anew, fetching each argument (`URL`, then the headers to send, tab
/// separated) once, all at once, with the client `render` builds for
/// plain-http pages, on a one-thread runtime; bodies read and dropped.
fn fetcher() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = source::client_with(|b| b.tls_built_in_root_certs(false));
    runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for spec in std::env::args().skip(1) {
            let client = client.clone();
            tasks.spawn(async move {
                let mut parts = spec.split('\t');
                let mut request = client.get(parts.next().expect("a URL"));
                for header in parts {
                    let (name, value) = header.split_once(": ").expect("a header");
                    request = request.header(name, value);
                }
                let response = request.send().await.expect("get");
                assert!(
                    response.status().is_success() || response.status().as_u16() == 304,
                    "{spec}: {}",
                    response.status()
                );
                response.bytes().await.expect("body")
            });
        }
        while let Some(done) = tasks.join_next().await {
            drop(done.expect("fetch task"));
        }
    });
}

/// The documents of the one-shot figure, each with the `If-None-Match` /
/// `If-Modified-Since` `render` sends: those of the validators it kept in
/// `state_dir` (none when the page sends none).
fn floor_requests(base: &str, state_dir: &Path) -> Vec<(String, Vec<String>)> {
    let kept: serde_json::Value = std::fs::read(state_dir.join("synth.validators.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    [
        "summary.json",
        "incidents.json",
        "scheduled-maintenances.json",
    ]
    .iter()
    .map(|doc| {
        let url = format!("{base}/api/v2/{doc}");
        let v = &kept["validators"]["documents"][&url];
        let mut headers = Vec::new();
        if let Some(etag) = v["etag"].as_str() {
            headers.push(format!("If-None-Match: {etag}"));
        }
        if let Some(date) = v["last_modified"].as_str() {
            headers.push(format!("If-Modified-Since: {date}"));
        }
        (url, headers)
    })
    .collect()
}

/// [`fetcher`]: this harness started anew for `requests`.
fn floor_process(requests: &[(String, Vec<String>)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the harness's path"));
    cmd.env(FETCHER, "1");
    for (url, headers) in requests {
        let mut spec = url.clone();
        for h in headers {
            spec.push('\t');
            spec.push_str(h);
        }
        cmd.arg(spec);
    }
    cmd.stdout(Stdio::null());
    cmd
}

/// `curl` fetching `requests` once in one process, three connections at
/// once: the process floor of a general fetcher.
fn floor_curl(requests: &[(String, Vec<String>)]) -> Command {
    let mut cmd = Command::new("curl");
    cmd.args(["--parallel", "--parallel-immediate", "--no-progress-meter"]);
    for (i, (url, headers)) in requests.iter().enumerate() {
        if i > 0 {
            cmd.arg("--next");
        }
        cmd.args([
            "--silent",
            "--show-error",
            "--fail",
            "--output",
            "/dev/null",
        ]);
        for h in headers {
            cmd.arg("--header").arg(h);
        }
        cmd.arg(url);
    }
    cmd.stdout(Stdio::null());
    cmd
}

// ---------------------------------------------------------------- snapshot

/// `statusmotd render --snapshot` of N clusters × 5N components × 500 items:
/// wall time and peak memory, from an empty output directory and with
/// nothing changed. `also_items` adds the 1,000-cluster page with 5,000
/// items to the curve.
fn snapshot(bench: &Bench, sizes: &[usize], headline: bool) {
    let now: Timestamp = "2026-03-10T12:00:00Z".parse().expect("fixed time");
    let mut specs: Vec<Spec> = sizes
        .iter()
        .map(|&n| Spec {
            clusters: bench.clusters(n),
            per_cluster: 5,
            items: 500,
        })
        .collect();
    if !headline && bench.mode == Mode::Full {
        specs.push(Spec {
            clusters: 1000,
            per_cluster: 5,
            items: 5000,
        });
    }
    let mut first: Option<(f64, usize)> = None;
    for spec in specs {
        let page = synth::v2(&spec, now, "probe");
        let snap = source::v2::from_payloads(
            "https://status.example.org",
            page.summary.to_string().as_bytes(),
            Some(page.incidents.to_string().as_bytes()),
            Some(page.maintenances.to_string().as_bytes()),
        )
        .expect("synthetic page parses");
        let dir = workdir(&spec, "https://status.example.org", "", "");
        let file = dir.path().join("snapshot.json");
        let snaps = statusmotd::snapshot::Snapshots::from([("synth".to_owned(), snap)]);
        std::fs::write(&file, statusmotd::snapshot::to_json(&snaps)).expect("write snapshot");
        let size_mib = std::fs::metadata(&file).map_or(0.0, |m| m.len() as f64 / 1_048_576.0);
        let cmd_in = |bin: &Path, dir: &Path| {
            let mut cmd = Command::new(bin);
            cmd.arg("render")
                .arg("--config")
                .arg(dir.join("mapping.toml"))
                .arg("--snapshot")
                .arg(dir.join("snapshot.json"))
                .arg("--now")
                .arg(now.to_string());
            cmd.stdout(Stdio::null());
            cmd
        };
        let cmd = || cmd_in(&bench.bin, dir.path());
        // The older binary renders into a site of its own: sharing one, each
        // binary would find the other's stamp (which names its program) and
        // plan everything.
        let before_dir = bench.before.as_ref().map(|bin| {
            let before_dir = workdir(&spec, "https://status.example.org", "", "");
            std::fs::copy(&file, before_dir.path().join("snapshot.json")).expect("copy snapshot");
            let _ = cmd_in(bin, before_dir.path()).status();
            before_dir
        });
        let cold_reps = if spec.clusters >= 10_000 {
            1
        } else {
            bench.reps(5, 2)
        };
        let mut cold = Vec::new();
        let mut steady = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..cold_reps {
            let _ = std::fs::remove_dir_all(dir.path().join("out"));
            let (t, kib) = timed_rss(bench, &cmd());
            cold.push(ms(t));
            rss.extend(kib);
        }
        let mut before = Vec::new();
        let mut before_rss = Vec::new();
        let mut steady_rss = Vec::new();
        // The same run without the stamp the one before left: every cluster
        // planned, every file compared (what a new `--now` or file costs).
        let stamp = dir.path().join("state/render.stamp");
        let mut planned = Vec::new();
        for _ in 0..bench.reps(15, 5) {
            let (t, kib) = timed_rss(bench, &cmd());
            steady.push(ms(t));
            steady_rss.extend(kib);
            rss.extend(kib);
            let _ = std::fs::remove_file(&stamp);
            let (t, kib) = timed_rss(bench, &cmd());
            planned.push(ms(t));
            rss.extend(kib);
            if let (Some(bin), Some(before_dir)) = (&bench.before, &before_dir) {
                let (t, kib) = timed_rss(bench, &cmd_in(bin, before_dir.path()));
                before.push(ms(t));
                before_rss.extend(kib);
            }
        }
        let files = count_files(&dir.path().join("out"));
        // The same runs timed by the CPU they use, then with one core held
        // by a busy loop: how far the time of a render spread over two
        // cores moves on a machine another program shares.
        let cpu = headline.then(|| {
            let runs = bench.reps(15, 5);
            (
                cpu_series(&cmd(), &stamp, runs, false),
                cpu_series(&cmd(), &stamp, runs, true),
            )
        });
        let label = format!(
            "{} clusters x {} components x {} items ({size_mib:.1} MiB snapshot, {files} files)",
            spec.clusters,
            spec.clusters * spec.per_cluster,
            spec.items
        );
        let (cold, steady, planned) = (stats(cold), stats(steady), stats(planned));
        show(
            &format!("render --snapshot {label}, nothing changed"),
            "ms",
            &steady,
        );
        show(
            &format!("render --snapshot {label}, nothing changed, planned in full (no stamp)"),
            "ms",
            &planned,
        );
        show(
            &format!("render --snapshot {label}, empty output dir"),
            "ms",
            &cold,
        );
        match cpu {
            Some((Some((wall, cpu)), busy)) => {
                show(
                    &format!(
                        "render --snapshot {label}, planned in full, CPU time (user + system)"
                    ),
                    "ms",
                    &cpu,
                );
                println!(
                    "the same runs by the clock: median {:.2} ms; CPU / clock {:.2} (the cores kept busy, on average)",
                    wall.median,
                    cpu.median / wall.median
                );
                if let Some((wall, cpu)) = busy {
                    show(
                        &format!("render --snapshot {label}, planned in full, one core held by a busy loop"),
                        "ms",
                        &wall,
                    );
                    println!("its CPU time: median {:.2} ms", cpu.median);
                }
            }
            Some((None, _)) => println!("# python3 not found: the CPU-time series is skipped"),
            None => {}
        }
        if !rss.is_empty() {
            let peak = rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
            println!(
                "peak RSS {label}: max {peak:.1} MiB over {} runs (every kind)",
                rss.len()
            );
            let peak = steady_rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
            println!(
                "peak RSS {label}, nothing changed: max {peak:.1} MiB over {} runs",
                steady_rss.len()
            );
        }
        if !before.is_empty() {
            let before = stats(before);
            let peak = before_rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
            show(
                &format!("STATUSMOTD_BIN_BEFORE render --snapshot {label}, nothing changed"),
                "ms",
                &before,
            );
            println!("STATUSMOTD_BIN_BEFORE peak RSS {label}: max {peak:.1} MiB");
        }
        let work = spec.clusters * spec.items;
        match first {
            None => first = Some((planned.median, work)),
            Some((t0, w0)) => println!(
                "growth vs the first size: work x{:.0}, time x{:.1} (nothing changed, planned in full)",
                work as f64 / w0 as f64,
                planned.median / t0
            ),
        }
    }
}

/// `runs` runs of `cmd`, each after removing `remove`, timed by the clock
/// and by their CPU time (`benches/common/cpu_time.py`, which reads the
/// kernel's accounting of each run), with one core held by a busy loop if
/// `busy`. `None` without a `python3` that runs it.
fn cpu_series(cmd: &Command, remove: &Path, runs: usize, busy: bool) -> Option<(Stats, Stats)> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/common/cpu_time.py");
    let mut series = Command::new(python);
    series
        .arg(script)
        .arg("--runs")
        .arg(runs.to_string())
        .arg("--remove")
        .arg(remove);
    if busy {
        series.arg("--busy");
    }
    series.arg("--").arg(cmd.get_program()).args(cmd.get_args());
    without_cargo_library_paths(&mut series);
    let out = series.output().ok()?;
    assert!(
        out.status.success(),
        "{series:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (wall, cpu): (Vec<f64>, Vec<f64>) = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let mut fields = line
                .split_whitespace()
                .map(|f| f.parse::<f64>().expect("a number"));
            (
                fields.next().expect("wall ms"),
                fields.next().expect("CPU ms"),
            )
        })
        .unzip();
    assert_eq!(wall.len(), runs, "one line per run");
    Some((stats(wall), stats(cpu)))
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| {
                let p = e.path();
                if p.is_dir() {
                    count_files(&p)
                } else {
                    1
                }
            })
            .sum()
    })
}

// ---------------------------------------------------------------- serve

const TOKEN: &str = "bench-webhook-token";

/// A running `statusmotd serve`, stopped (SIGTERM) when dropped.
struct Serve {
    child: Child,
    url: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serve` on a free port and waits for `/livez`; `None` when this
/// build has no `serve`.
async fn start_serve(bench: &Bench, dir: &Path, port: u16) -> Option<Serve> {
    let log = std::fs::File::create(dir.join("serve.log")).expect("log file");
    let child = Command::new(&bench.bin)
        .arg("serve")
        .arg("--config")
        .arg(dir.join("mapping.toml"))
        .env("STATUSMOTD_WEBHOOK_TOKEN", TOKEN)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn statusmotd serve");
    let mut serve = Serve {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = serve.child.try_wait() {
            let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
            println!(
                "# statusmotd serve exited at once; serve figures pending\n# {}",
                log.trim()
            );
            return None;
        }
        let live = client.get(format!("{}/livez", serve.url)).send().await;
        if live.is_ok_and(|r| r.status().is_success()) {
            return Some(serve);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = serve.child.kill();
    println!("# statusmotd serve did not answer /livez within 20s; serve figures pending");
    None
}

/// Polls `path` until its text contains `marker`.
async fn wait_for(path: &Path, marker: &str, timeout: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(marker)) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    None
}

/// Watches one file for a marker with inotify, from a thread of its own,
/// and takes the moment the rename (or write) that put the marker there is
/// reported. A polling loop on the runtime cannot time sub-millisecond
/// figures: tokio's timer works in whole milliseconds, so every poll used to
/// add up to a millisecond to what it measured.
struct Watch {
    seen: std::sync::mpsc::Receiver<Instant>,
}

impl Watch {
    /// Starts watching before the change is caused, so that none is missed.
    fn start(path: &Path, marker: &str) -> Watch {
        use rustix::fs::inotify;
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC).expect("inotify");
        let dir = path.parent().expect("a file in a directory");
        inotify::add_watch(
            &fd,
            dir,
            inotify::WatchFlags::MOVED_TO | inotify::WatchFlags::CLOSE_WRITE,
        )
        .expect("watch the directory");
        let (path, marker) = (path.to_path_buf(), marker.to_owned());
        let name = path.file_name().expect("a file name").to_owned();
        let (tx, seen) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [std::mem::MaybeUninit::uninit(); 4096];
            let mut events = inotify::Reader::new(&fd, &mut buf);
            loop {
                if std::fs::read_to_string(&path).is_ok_and(|t| t.contains(&marker)) {
                    let _ = tx.send(Instant::now());
                    return;
                }
                // Block until our file is replaced or written again.
                loop {
                    let Ok(event) = events.next() else { return };
                    if event
                        .file_name()
                        .is_some_and(|n| n.to_bytes() == name.as_encoded_bytes())
                    {
                        break;
                    }
                }
            }
        });
        Watch { seen }
    }

    /// When the marker was first seen; `None` after `timeout`.
    fn seen(self, timeout: Duration) -> Option<Instant> {
        tokio::task::block_in_place(|| self.seen.recv_timeout(timeout).ok())
    }
}

/// Waits until the fake has seen no request for `quiet`.
async fn settle(fake: &FakeStatuspage, quiet: Duration) {
    let mut last = fake.requests();
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = fake.requests();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return;
        }
    }
}

async fn serve_figure(bench: &Bench, figure: &str) {
    let spec = Spec {
        clusters: bench.clusters(300),
        per_cluster: 5,
        items: 500,
    };
    // On a runtime of its own, so that serving big pages does not delay the
    // load generator's requests and timers on this one.
    let fake = Arc::new(tokio::task::block_in_place(FakeStatuspage::spawn));
    serve_v2(&fake, live_page(&spec, "probe-start"));
    let port = free_port();
    let dir = workdir(
        &spec,
        &fake.url(),
        "debounce = \"0s\"\npoll_interval = \"1h\"\nrequest_timeout = \"5s\"\nretries = 0\n",
        &format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nwebhook_token = {{ env = \"STATUSMOTD_WEBHOOK_TOKEN\" }}\n{}",
            if figure == "preview" { "webhook_preview = true\n" } else { "" }
        ),
    );
    let Some(serve) = start_serve(bench, dir.path(), port).await else {
        return;
    };
    let motd = dir
        .path()
        .join("out")
        .join(synth::cluster_name(0))
        .join("motd");
    if wait_for(&motd, "probe-start", Duration::from_secs(30))
        .await
        .is_none()
    {
        println!("# serve wrote no MOTD within 30s; see serve.log; figure skipped");
        return;
    }
    let client = reqwest::Client::new();
    let hook = format!("{}/webhook/{TOKEN}", serve.url);
    match figure {
        "webhook" => webhook(bench, &fake, &client, &hook, &motd, dir.path()).await,
        "burst" => burst(bench, &fake, &client, &hook, dir.path(), &spec).await,
        "notmodified" => not_modified(bench, &client, &serve.url, dir.path()).await,
        "answer" => answer(bench, &fake, &client, &hook).await,
        "preview" => preview(bench, &fake, &hook, &motd, dir.path()).await,
        _ => unreachable!(),
    }
    print_serve_rss(&serve);
}

fn print_serve_rss(serve: &Serve) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", serve.child.id()));
    if let Some(line) = status.ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with("VmHWM"))
            .map(str::to_owned)
    }) {
        println!(
            "serve peak RSS: {}",
            line.trim_start_matches("VmHWM:").trim()
        );
    }
}

/// Webhook -> MOTD on disk, statusmotd against the baseline hook, and the
/// floor: one fetch cycle plus one fsynced write, measured in process.
async fn webhook(
    bench: &Bench,
    fake: &FakeStatuspage,
    client: &reqwest::Client,
    hook: &str,
    motd: &Path,
    dir: &Path,
) {
    let spec = Spec {
        clusters: bench.clusters(300),
        per_cluster: 5,
        items: 500,
    };
    let reps = bench.reps(30, 8);
    let body = synth::webhook_body(Timestamp::now());
    // A real webhook reports one change: between runs only the marker in
    // one incident of cluster 0 differs. A second series moves every
    // item's times too (the page generated anew for each run), so every
    // cluster changes: the worst case, and what this figure measured
    // before serve planned only the clusters whose inputs changed.
    let base = Timestamp::now();
    let mut ours = Vec::new();
    let mut every = Vec::new();
    let mut answers = Vec::new();
    for (series, r) in (0..2).flat_map(|s| (0..reps).map(move |r| (s, r))) {
        let marker = format!("probe-{series}-{r}");
        let page = if series == 0 {
            synth::v2(&spec, base, &marker).recent_only(50)
        } else {
            live_page(&spec, &marker)
        };
        serve_v2(fake, page);
        let watch = Watch::start(motd, &marker);
        let started = Instant::now();
        let answer = client
            .post(hook)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .expect("webhook answered");
        if series == 0 {
            answers.push(ms(started.elapsed()));
        }
        assert_eq!(answer.status().as_u16(), 202, "webhook answer");
        let seen = watch
            .seen(Duration::from_secs(20))
            .expect("the MOTD changed");
        let took = ms(seen.saturating_duration_since(started));
        // The first run of each series changes every cluster (a new page).
        if r > 0 || reps == 1 {
            if series == 0 {
                ours.push(took);
            } else {
                every.push(took);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ours = stats(ours);
    show(
        "statusmotd serve: webhook -> MOTD on disk (one incident changed)",
        "ms",
        &ours,
    );
    show(
        "statusmotd serve: webhook -> MOTD on disk (every item changed)",
        "ms",
        &stats(every),
    );
    show("statusmotd serve: webhook answer", "ms", &stats(answers));

    // The floor: what no implementation can avoid.
    let source_client = source::client();
    let endpoint = Endpoint::Public { url: fake.url() };
    let mut fetches = Vec::new();
    for _ in 0..reps {
        let started = Instant::now();
        source::fetch(&source_client, &endpoint, &FetchOptions::default())
            .await
            .expect("fetch");
        fetches.push(ms(started.elapsed()));
    }
    let (fetches, writes) = (stats(fetches), floor_writes(dir, reps));
    show("floor: one fetch cycle (3 requests)", "ms", &fetches);
    show("floor: one atomic fsynced write", "ms", &writes);
    let floor = fetches.median + writes.median;
    println!(
        "statusmotd vs floor: {:.2} ms over the floor of {floor:.2} ms ({:.1}x the floor)",
        ours.median - floor,
        ours.median / floor
    );

    let Some(python) = &bench.python else {
        return;
    };
    let port = free_port();
    let out = dir.join("out-baseline");
    // Each webhook starts the baseline script, with the shell's library
    // path like every program the harness times.
    let mut server = without_cargo_library_paths(
        Command::new(python).arg(bench.baseline_dir.join("webhook_server.py")),
    )
    .arg(port.to_string())
    .arg(fake.url())
    .arg(dir.join("clusters.json"))
    .arg(&out)
    .spawn()
    .expect("start the baseline hook");
    let url = format!("http://127.0.0.1:{port}/");
    for _ in 0..100 {
        if client.get(&url).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let theirs_motd = out.join(synth::cluster_name(0)).join("motd");
    let mut theirs = Vec::new();
    for r in 0..reps {
        let marker = format!("base-{r}");
        serve_v2(fake, live_page(&spec, &marker));
        let request = client.post(&url).body(body.clone()).send();
        let (answer, left) = tokio::join!(
            request,
            wait_for(&theirs_motd, &marker, Duration::from_secs(60))
        );
        answer.expect("baseline hook answered");
        theirs.push(ms(left.expect("the baseline MOTD changed")));
    }
    let _ = server.kill();
    let _ = server.wait();
    let theirs = stats(theirs);
    show("baseline hook: webhook -> MOTD on disk", "ms", &theirs);
    println!(
        "speedup (baseline median / statusmotd median): {:.1}x",
        theirs.median / ours.median
    );
}

/// One atomic fsynced write of a MOTD-sized file, `reps` times.
fn floor_writes(dir: &Path, reps: usize) -> Stats {
    let out = statusmotd::output::OutputDir::open(&dir.join("floor")).expect("output dir");
    stats((0..reps).map(|r| one_write(&out, r)).collect())
}

/// One atomic fsynced write of a 300-line MOTD whose bytes differ for each
/// `r`, in ms.
fn one_write(out: &statusmotd::output::OutputDir, r: usize) -> f64 {
    let bytes = format!("{r}\n").repeat(300);
    let now = Timestamp::now();
    let started = Instant::now();
    tokio::task::block_in_place(|| {
        out.write(Path::new("c/motd"), bytes.as_bytes(), None, now)
            .expect("write")
    });
    ms(started.elapsed())
}

/// `webhook_preview = true`: webhook -> MOTD on disk, from the answer, for
/// a webhook whose incident carries the marker, against one fsynced write.
async fn preview(bench: &Bench, fake: &FakeStatuspage, hook: &str, motd: &Path, dir: &Path) {
    let spec = Spec {
        clusters: bench.clusters(300),
        per_cluster: 5,
        items: 500,
    };
    let reps = bench.reps(30, 8);
    let base = Timestamp::now();
    let mut from_answer = Vec::new();
    let mut from_send = Vec::new();
    // Upstream never shows the marker: only the preview can put it in the
    // MOTD (the fetch the webhook triggers then takes it out again).
    serve_v2(fake, synth::v2(&spec, base, "upstream").recent_only(50));
    // The first render writes every cluster (seconds on a busy disk): a
    // fetch that ends while it runs is rendered together with the preview,
    // which it supersedes, so wait for the renderer to be idle.
    let index = dir.join("out").join("index.json");
    for _ in 0..600 {
        if index.is_file() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The disk's fsync moves from one minute to the next on a shared
    // machine: the floor is measured between the previews, one write after
    // each, and each preview is set against the write next to it.
    let floor = statusmotd::output::OutputDir::open(&dir.join("floor")).expect("output dir");
    let mut writes = Vec::new();
    let mut seconds = Vec::new();
    let mut ratios = Vec::new();
    for r in 0..reps {
        let marker = format!("preview-{r}");
        let mut body: serde_json::Value =
            serde_json::from_str(&synth::webhook_body(Timestamp::now())).expect("webhook body");
        body["incident"]["name"] = format!("[{marker}] Slow I/O on /work (inc000000)").into();
        let watch = Watch::start(motd, &marker);
        let (started, answered, status) =
            tokio::task::block_in_place(|| post_blocking(hook, &body.to_string()));
        assert_eq!(status, 202, "webhook answer");
        let seen = watch
            .seen(Duration::from_secs(20))
            .expect("the MOTD changed");
        let left = seen.saturating_duration_since(answered);
        from_answer.push(ms(left));
        from_send.push(ms(seen.saturating_duration_since(started)));
        tokio::time::sleep(Duration::from_millis(150)).await;
        let write = one_write(&floor, r);
        writes.push(write);
        ratios.push(ms(left) / write);
        // A write right after another is quicker than the first after a
        // pause (the disk and the caches are awake): shown apart, as the
        // best any single write does on this machine.
        seconds.push(one_write(&floor, r + reps));
    }
    let from_answer = stats(from_answer);
    show(
        "statusmotd serve, webhook_preview: answer -> MOTD on disk",
        "ms",
        &from_answer,
    );
    show(
        "statusmotd serve, webhook_preview: send -> MOTD on disk",
        "ms",
        &stats(from_send),
    );
    let writes = stats(writes);
    show(
        "floor: one atomic fsynced write, between the previews",
        "ms",
        &writes,
    );
    println!(
        "preview vs one write: {:.1}x the write (medians; target <= 2x)",
        from_answer.median / writes.median
    );
    let seconds = stats(seconds);
    show(
        "one atomic fsynced write right after another (not a floor: no preview follows a write)",
        "ms",
        &seconds,
    );
    println!(
        "preview vs the write right after another: {:.1}x",
        from_answer.median / seconds.median
    );
    show(
        "preview / the write after it, each repetition",
        "x",
        &stats(ratios),
    );
}

/// POSTs the JSON `body` to `url` (`http://host:port/path`) on a blocking
/// socket of this thread, connected before the clock starts: when the
/// request was sent, when the status line of the answer arrived, and the
/// status. A client on the runtime would notice the answer only when its
/// worker next wakes, later than the MOTD's rename is seen.
fn post_blocking(url: &str, body: &str) -> (Instant, Instant, u16) {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("a path"));
    let mut stream = std::net::TcpStream::connect(host).expect("connect to serve");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    stream
        .write_all(request.as_bytes())
        .expect("send the webhook");
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.windows(2).any(|w| w == b"\r\n") {
        let n = stream.read(&mut buf).expect("read the answer");
        assert!(n > 0, "serve closed the connection without an answer");
        head.extend_from_slice(&buf[..n]);
    }
    let answered = Instant::now();
    let status = String::from_utf8_lossy(&head)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (started, answered, status)
}

/// Fetch cycles for a burst of webhooks: statusmotd, then the baseline hook.
async fn burst(
    bench: &Bench,
    fake: &Arc<FakeStatuspage>,
    client: &reqwest::Client,
    hook: &str,
    dir: &Path,
    spec: &Spec,
) {
    let n = match bench.mode {
        Mode::Smoke => 10,
        Mode::Quick | Mode::Full => 300,
    };
    let body = synth::webhook_body(Timestamp::now());
    let fire = |url: String, n: usize| {
        let client = client.clone();
        let body = body.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..n {
                let request = client
                    .post(&url)
                    .timeout(Duration::from_secs(600))
                    .body(body.clone())
                    .send();
                tasks.spawn(request);
            }
            let mut ok = 0;
            while let Some(r) = tasks.join_next().await {
                if r.is_ok_and(|r| r.is_ok_and(|r| r.status().is_success())) {
                    ok += 1;
                }
            }
            ok
        }
    };
    for r in 0..bench.reps(5, 2) {
        settle(fake, Duration::from_millis(500)).await;
        serve_v2(fake, live_page(spec, &format!("burst-{r}")));
        let before = fake.requests_to("/api/v2/summary.json");
        let started = Instant::now();
        let ok = fire(hook.to_owned(), n).await;
        let sent = started.elapsed();
        settle(fake, Duration::from_secs(1)).await;
        println!(
            "statusmotd serve: {n} webhooks ({ok} answered 2xx, sent in {:.0} ms) -> {} fetch cycles",
            ms(sent),
            fake.requests_to("/api/v2/summary.json") - before
        );
    }
    let Some(python) = &bench.python else {
        return;
    };
    // The baseline runs one script per webhook; a burst of 300 takes
    // minutes, so the quick run sends fewer.
    let n = if bench.mode == Mode::Full { n } else { 20 };
    let port = free_port();
    // Each webhook starts the baseline script, with the shell's library
    // path like every program the harness times.
    let mut server = without_cargo_library_paths(
        Command::new(python).arg(bench.baseline_dir.join("webhook_server.py")),
    )
    .arg(port.to_string())
    .arg(fake.url())
    .arg(dir.join("clusters.json"))
    .arg(dir.join("out-baseline"))
    .spawn()
    .expect("start the baseline hook");
    let url = format!("http://127.0.0.1:{port}/");
    for _ in 0..100 {
        if client.get(&url).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    settle(fake, Duration::from_millis(500)).await;
    let before = fake.requests_to("/api/v2/summary.json");
    let started = Instant::now();
    let ok = fire(url, n).await;
    let took = started.elapsed();
    println!(
        "baseline hook: {n} webhooks ({ok} answered 2xx, last after {:.1} s) -> {} fetch cycles",
        took.as_secs_f64(),
        fake.requests_to("/api/v2/summary.json") - before
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// Webhook answer times at a steady 1,000 requests/s (open loop: a request
/// is sent every millisecond whatever the answers do), healthy and while
/// every upstream request hangs.
async fn answer(bench: &Bench, fake: &FakeStatuspage, client: &reqwest::Client, hook: &str) {
    let seconds = match bench.mode {
        Mode::Smoke => 0.2,
        Mode::Quick => 2.0,
        Mode::Full => 10.0,
    };
    let body = synth::webhook_body(Timestamp::now());
    for hanging in [false, true] {
        if hanging {
            fake.fault(Fault::Hang);
        }
        let total = (seconds * 1000.0) as u64;
        let start = tokio::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..total {
            tokio::time::sleep_until(start + Duration::from_millis(i)).await;
            let request = client
                .post(hook)
                .header("content-type", "application/json")
                .body(body.clone());
            tasks.spawn(async move {
                let sent = Instant::now();
                let status = request.send().await.map(|r| r.status().as_u16());
                (ms(sent.elapsed()), status)
            });
        }
        let elapsed = start.elapsed().as_secs_f64();
        let mut latencies = Vec::new();
        let mut bad = 0;
        while let Some(joined) = tasks.join_next().await {
            let (latency, status) = joined.expect("request task");
            if status.ok() == Some(202) {
                latencies.push(latency);
            } else {
                bad += 1;
            }
        }
        let s = stats(latencies);
        println!(
            "webhook answers at {:.0} req/s{}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, n={}, not 202: {bad}",
            total as f64 / elapsed,
            if hanging { ", upstream hanging" } else { ", healthy" },
            s.median,
            s.p99,
            s.max,
            s.n
        );
        fake.clear_faults();
    }
}

/// `GET /motd/{cluster}` answered 304, requests/s with wrk, against Python's
/// `http.server` answering 304 to `If-Modified-Since` for the same file.
async fn not_modified(bench: &Bench, client: &reqwest::Client, url: &str, dir: &Path) {
    let motd_url = format!("{url}/motd/{}", synth::cluster_name(0));
    let first = client.get(&motd_url).send().await.expect("GET /motd");
    assert_eq!(first.status().as_u16(), 200, "GET {motd_url}");
    let etag = first
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("an ETag");
    let last_modified = first
        .headers()
        .get("last-modified")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("a Last-Modified");
    let check = client
        .get(&motd_url)
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("conditional GET");
    assert_eq!(check.status().as_u16(), 304, "If-None-Match answered");
    if !bench.wrk {
        println!("# wrk not found: requests/s not measured (the 304 itself works)");
        return;
    }
    let seconds = if bench.mode == Mode::Full { 10 } else { 3 };
    let reps = bench.reps(5, 2);
    let ours: Vec<f64> = (0..reps)
        .map(|_| wrk(&motd_url, &format!("If-None-Match: {etag}"), seconds))
        .collect();
    let ours = stats(ours);
    show("statusmotd serve: GET /motd/{cluster} 304", "req/s", &ours);

    let Some(python) = &bench.python else {
        return;
    };
    let port = free_port();
    let mut server = Command::new(python)
        .args(["-m", "http.server", "--bind", "127.0.0.1"])
        .arg(port.to_string())
        .arg("--directory")
        .arg(dir.join("out"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python http.server");
    let file_url = format!("http://127.0.0.1:{port}/{}/motd", synth::cluster_name(0));
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(r) = client
            .get(&file_url)
            .header("if-modified-since", &last_modified)
            .send()
            .await
        {
            answered = Some(r.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if answered == Some(304) {
        let theirs: Vec<f64> = (0..reps)
            .map(|_| {
                wrk(
                    &file_url,
                    &format!("If-Modified-Since: {last_modified}"),
                    seconds,
                )
            })
            .collect();
        let theirs = stats(theirs);
        show("baseline python http.server 304", "req/s", &theirs);
        println!(
            "ratio (statusmotd / baseline): {:.1}x",
            ours.median / theirs.median
        );
    } else {
        println!("# python http.server answered {answered:?}, not 304; baseline skipped");
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// Requests/s of one wrk run: 2 threads, 32 connections.
fn wrk(url: &str, header: &str, seconds: u64) -> f64 {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{seconds}s"), "-H", header, url])
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let non2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx"))
        .unwrap_or("");
    if !non2xx.is_empty() {
        println!("# wrk: {}", non2xx.trim());
    }
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk output:\n{text}"))
}
