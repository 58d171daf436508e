//! Which clusters a render of `serve` plans again.
//!
//! Planning every cluster after every fetch cost about half of a webhook's
//! way to the MOTD, while a webhook usually changes one incident of one
//! group. [`Inputs`] remembers what each cluster read at its last plan (per
//! source: the component ids its entries selected, and whether it shows
//! page-wide items) and the data of the last render. The next render then
//! plans only the clusters whose inputs changed:
//!
//! - per source, the components and items (incidents, maintenance) that
//!   differ between the old and the new snapshot, added or gone included: a
//!   cluster is planned again when its selection meets the components they
//!   name, or, for an item that names none, when the cluster shows page-wide
//!   items;
//! - items whose time window boundary passed since the last render (a
//!   maintenance that enters `upcoming`, one whose window ends, a resolved
//!   incident that leaves `recent_resolved`), as if they had changed;
//! - every cluster of a source whose page, groups or component list (ids,
//!   names, groups, order) changed, since names resolve against them, whose
//!   fetch started or stopped failing, or whose data is stale or just
//!   became so (the MOTD then says how old it is);
//! - everything after a configuration or template change (a render under
//!   another configuration than the last one's), when a render had errors
//!   or left a cluster unplanned (their clusters are tried again), and on
//!   every poll when a custom template prints the clock, so that it follows
//!   the clock as it did (an unchanged poll otherwise plans nothing).
//!
//! A new `fetched_at` alone changes no cluster: the default templates show
//! the data's age only when it is stale. [`Inputs::next_boundary`] is when
//! the renderer must look again without a new snapshot.
//!
//! Two shortcuts keep a webhook preview from comparing the whole page: a
//! snapshot that is the very one of the last render (the same `Arc`) only
//! has its time windows checked, and a source changed by previews alone
//! since the last render takes what they say they touched ([`Previewed`])
//! instead of the comparison.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};

use jiff::{SignedDuration, Timestamp};

use crate::config::{Config, Settings};
use crate::model::{Incident, ItemKind, Snapshot, SnapshotIndex};
use crate::pipeline::{Gathered, Plan, SourceData};
use crate::view::ClusterView;

use super::preview::Touched;

/// Boundaries this close before the last render count as not yet passed:
/// a render at the very instant of a boundary still showed the old state.
const SLACK: SignedDuration = SignedDuration::from_secs(1);

/// What one cluster read from one of its sources.
#[derive(Debug, Clone)]
struct Part {
    source: String,
    selection: BTreeSet<String>,
    page_wide: bool,
}

/// What the last render saw. See the module documentation.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Cluster -> what it read at its last plan.
    reads: BTreeMap<String, Vec<Part>>,
    /// `reads` the other way round, so that a change of one component
    /// finds its clusters without a pass over every cluster's reads.
    readers: Readers,
    /// Cluster -> its view at its last plan, so that notifications always
    /// see every cluster, planned again or not.
    views: BTreeMap<String, ClusterView>,
    /// The data and time of the last render; `None` plans every cluster.
    last: Option<(Arc<Gathered>, Timestamp)>,
    /// The configuration of the last render ([`Config::parse_id`]; none is
    /// 0): `reads` were read under it.
    read_under: u64,
}

/// What webhook previews changed in one source since the last render, and
/// which snapshot they were applied to: when that is not the snapshot of
/// the last render, the snapshots are compared as after a fetch.
#[derive(Debug, Clone)]
pub struct Previewed {
    pub applied_to: Weak<Snapshot>,
    pub touched: Touched,
}

/// Per source: the clusters reading it, those showing its page-wide items,
/// and per component id the clusters whose selection holds it.
#[derive(Debug, Default)]
struct Readers {
    all: BTreeMap<String, BTreeSet<String>>,
    page_wide: BTreeMap<String, BTreeSet<String>>,
    selecting: BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
}

impl Readers {
    fn of(reads: &BTreeMap<String, Vec<Part>>) -> Readers {
        let mut r = Readers::default();
        for (cluster, parts) in reads {
            for p in parts {
                let add = |set: &mut BTreeSet<String>| {
                    set.insert(cluster.clone());
                };
                add(r.all.entry(p.source.clone()).or_default());
                if p.page_wide {
                    add(r.page_wide.entry(p.source.clone()).or_default());
                }
                let by_id = r.selecting.entry(p.source.clone()).or_default();
                for id in &p.selection {
                    add(by_id.entry(id.clone()).or_default());
                }
            }
        }
        r
    }

    /// The clusters `delta` of `source` concerns.
    fn concerned<'r>(&'r self, source: &str, delta: &Delta, out: &mut BTreeSet<&'r str>) {
        let mut take = |set: Option<&'r BTreeSet<String>>| {
            out.extend(set.into_iter().flatten().map(String::as_str));
        };
        if delta.all {
            take(self.all.get(source));
            return;
        }
        if delta.page_wide {
            take(self.page_wide.get(source));
        }
        if let Some(by_id) = self.selecting.get(source) {
            for id in &delta.components {
                take(by_id.get(id));
            }
        }
    }
}

/// How one source changed between two renders.
#[derive(Debug, Default, PartialEq)]
struct Delta {
    /// Every cluster reading the source.
    all: bool,
    /// Components named by a changed component or item.
    components: BTreeSet<String>,
    /// An item that names no component changed.
    page_wide: bool,
}

impl Inputs {
    /// Makes the next render plan every cluster.
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// The clusters to plan for `data` at `now`, or `None` for all of them;
    /// `previewed`: the sources only webhook previews changed since the
    /// last render.
    pub fn dirty(
        &self,
        config: &Config,
        data: &Gathered,
        now: Timestamp,
        previewed: &BTreeMap<String, Previewed>,
    ) -> Option<Vec<String>> {
        let (last, last_now) = self.last.as_ref()?;
        // What each cluster read was read under another configuration,
        // whose entries may have selected other components.
        if self.read_under != config.parse_id {
            return None;
        }
        let names: BTreeSet<&String> = last.sources.keys().chain(data.sources.keys()).collect();
        let deltas: BTreeMap<&str, Delta> = names
            .into_iter()
            .map(|name| {
                let old = last.sources.get(name);
                let touched = previewed.get(name.as_str()).and_then(|p| {
                    let same = old.is_some_and(|o| {
                        std::ptr::eq(Arc::as_ptr(&o.snapshot), p.applied_to.as_ptr())
                    });
                    same.then_some(&p.touched)
                });
                let d = delta(
                    old,
                    data.sources.get(name),
                    touched,
                    &config.settings,
                    *last_now,
                    now,
                );
                (name.as_str(), d)
            })
            .filter(|(_, d)| *d != Delta::default())
            .collect();
        if deltas.is_empty() {
            return Some(Vec::new());
        }
        let mut dirty: BTreeSet<&str> = BTreeSet::new();
        for (source, d) in &deltas {
            self.readers.concerned(source, d, &mut dirty);
        }
        Some(
            dirty
                .into_iter()
                .filter(|name| config.clusters.contains_key(*name))
                .map(str::to_owned)
                .collect(),
        )
    }

    /// Remembers what `plan` read from `data` at `now`. A plan with errors
    /// or warnings makes the next render plan everything again, so that
    /// nothing it reported is lost from `/readyz`.
    pub fn record(&mut self, config: &Config, data: Arc<Gathered>, plan: Plan, now: Timestamp) {
        let planned = !plan.clusters.is_empty() || plan.complete;
        if plan.complete {
            self.reads.clear();
            self.views.clear();
        }
        let indexes: BTreeMap<&str, SnapshotIndex<'_>> = data
            .sources
            .keys()
            .filter_map(|name| data.index(name).map(|index| (name.as_str(), index)))
            .collect();
        let complete_and_clean = plan.errors.is_empty() && plan.warnings.is_empty();
        for (name, cluster_plan) in plan.clusters {
            let Some(cluster) = config.clusters.get(&name) else {
                continue;
            };
            let mut parts = Vec::new();
            for (n, part) in cluster.parts().iter().enumerate() {
                let (Some(source), Some(index)) = (
                    data.sources.get(&part.source),
                    indexes.get(part.source.as_str()),
                ) else {
                    continue;
                };
                let known = if n == 0 {
                    data.known.clusters.get(&name)
                } else {
                    data.known.also.get(&name).and_then(|a| a.get(&part.source))
                };
                let Ok(resolution) =
                    crate::mapping::resolve_with_known(part, &source.snapshot, index, known)
                else {
                    continue;
                };
                parts.push(Part {
                    source: part.source.clone(),
                    selection: resolution.selection,
                    page_wide: part.page_wide,
                });
            }
            self.reads.insert(name.clone(), parts);
            self.views.insert(name, cluster_plan.view);
        }
        drop(indexes);
        let before = self.reads.len();
        self.reads
            .retain(|name, _| config.clusters.contains_key(name));
        if planned || self.reads.len() != before {
            self.readers = Readers::of(&self.reads);
        }
        self.views
            .retain(|name, _| config.clusters.contains_key(name));
        self.read_under = config.parse_id;
        // A cluster never planned (or failed) makes the next render plan
        // every cluster, as errors do. `reads` now holds only clusters of
        // `config`.
        let every_cluster_read = self.reads.len() == config.clusters.len();
        self.last = (complete_and_clean && every_cluster_read).then_some((data, now));
    }

    /// Every cluster's latest view, for the notification outbox.
    pub fn views(&self) -> Vec<&ClusterView> {
        self.views.values().collect()
    }

    /// The earliest moment after `now` at which some file may change though
    /// no snapshot does: a time window boundary of an item, or a source's
    /// data turning stale.
    pub fn next_boundary(&self, config: &Config, now: Timestamp) -> Option<Timestamp> {
        let (data, _) = self.last.as_ref()?;
        let s = &config.settings;
        data.sources
            .values()
            .flat_map(|d| {
                let stale = crate::view::turns_stale(d.snapshot.fetched_at, s.stale_after);
                d.snapshot
                    .incidents
                    .iter()
                    .flat_map(|i| boundaries(i, s))
                    .chain(stale)
            })
            .filter(|t| *t > now)
            .min()
    }
}

/// [`crate::view::boundaries`] with the windows of `s`.
fn boundaries(item: &Incident, s: &Settings) -> Vec<Timestamp> {
    crate::view::boundaries(item, s.upcoming, s.recent_resolved)
}

fn stale(d: &SourceData, s: &Settings, now: Timestamp) -> bool {
    now.duration_since(d.snapshot.fetched_at) > s.stale_after
}

/// How the data of one source changed from `old` (seen at `last_now`) to
/// `new` (seen at `now`); `touched`: what previews changed, when they alone
/// made `new` from `old`.
fn delta(
    old: Option<&SourceData>,
    new: Option<&SourceData>,
    touched: Option<&Touched>,
    settings: &Settings,
    last_now: Timestamp,
    now: Timestamp,
) -> Delta {
    let all = Delta {
        all: true,
        ..Delta::default()
    };
    let (Some(old), Some(new)) = (old, new) else {
        return all;
    };
    let note = |d: &SourceData| d.fetch_error.as_ref().map(|f| f.note);
    if note(old) != note(new) || stale(old, settings, last_now) || stale(new, settings, now) {
        return all;
    }
    let lo = last_now.checked_sub(SLACK).unwrap_or(last_now);
    let crossed = |i: &Incident| {
        boundaries(i, settings)
            .into_iter()
            .any(|t| lo < t && t <= now)
    };
    let touch = |d: &mut Delta, i: &Incident| {
        if i.components.is_empty() {
            d.page_wide = true;
        }
        d.components.extend(i.components.iter().cloned());
    };
    let (before_snap, after_snap) = (&old.snapshot, &new.snapshot);
    let known = if Arc::ptr_eq(before_snap, after_snap) {
        Some(Delta::default())
    } else {
        touched.map(|t| Delta {
            all: false,
            components: t.components.iter().cloned().collect(),
            page_wide: t.page_wide,
        })
    };
    if let Some(mut delta) = known {
        // Nothing else changed: only the clock can have moved an item.
        for i in after_snap.incidents.iter().filter(|i| crossed(i)) {
            touch(&mut delta, i);
        }
        return delta;
    }
    if before_snap.page != after_snap.page
        || before_snap.groups != after_snap.groups
        || !same_structure(before_snap, after_snap)
    {
        return all;
    }
    let mut delta = Delta::default();
    for (x, y) in before_snap.components.iter().zip(&after_snap.components) {
        if x != y {
            delta.components.insert(y.id.clone());
        }
    }
    let key = |i: &Incident| (i.kind, i.id.clone());
    let before: BTreeMap<(ItemKind, String), &Incident> =
        before_snap.incidents.iter().map(|i| (key(i), i)).collect();
    let mut seen = BTreeSet::new();
    for i in &after_snap.incidents {
        let id = key(i);
        match before.get(&id) {
            Some(old) if *old == i => {
                if crossed(i) {
                    touch(&mut delta, i);
                }
            }
            Some(old) => {
                touch(&mut delta, old);
                touch(&mut delta, i);
            }
            None => touch(&mut delta, i),
        }
        seen.insert(id);
    }
    for (id, old) in &before {
        if !seen.contains(id) {
            touch(&mut delta, old);
        }
    }
    delta
}

/// Whether both snapshots list the same components (ids, names, groups) in
/// the same order: then every cluster's entries resolve as before, and the
/// degraded components of a view keep their order.
fn same_structure(a: &Snapshot, b: &Snapshot) -> bool {
    a.components.len() == b.components.len()
        && a.components
            .iter()
            .zip(&b.components)
            .all(|(x, y)| x.id == y.id && x.name == y.name && x.group_id == y.group_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Component, ComponentStatus, Page};

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn settings() -> Settings {
        let text = "[sources.s]\nkind = \"statuspage-public\"\nurl = \"https://status.example.org\"\n\
                    [settings]\nupcoming = \"1h\"\nrecent_resolved = \"1d\"\nstale_after = \"30m\"\n\
                    [clusters.a]\nsource = \"s\"\ncomponents = [\"A\"]\n";
        Config::parse(text, std::path::Path::new("/etc/statusmotd/mapping.toml"))
            .unwrap()
            .settings
    }

    fn component(id: &str, status: ComponentStatus) -> Component {
        Component {
            id: id.into(),
            name: id.to_uppercase(),
            status,
            group_id: None,
            description: None,
            updated_at: None,
            unknown: None,
        }
    }

    fn item(id: &str, status: &str, components: &[&str]) -> Incident {
        Incident {
            id: id.into(),
            kind: ItemKind::Incident,
            name: id.into(),
            status: status.into(),
            impact: "minor".into(),
            created_at: None,
            updated_at: Some(ts("2024-05-01T10:00:00Z")),
            started_at: None,
            monitoring_at: None,
            resolved_at: None,
            scheduled_for: None,
            scheduled_until: None,
            shortlink: None,
            components: components.iter().map(|c| (*c).to_owned()).collect(),
            updates: Vec::new(),
        }
    }

    fn data(fetched_at: &str, incidents: Vec<Incident>, b: ComponentStatus) -> SourceData {
        SourceData {
            snapshot: Arc::new(Snapshot {
                page: Page::default(),
                fetched_at: ts(fetched_at),
                components: vec![
                    component("a", ComponentStatus::Operational),
                    component("b", b),
                ],
                groups: Vec::new(),
                incidents,
            }),
            fetch_error: None,
        }
    }

    const T0: &str = "2024-05-01T12:00:00Z";
    const T1: &str = "2024-05-01T12:01:00Z";
    const OK: ComponentStatus = ComponentStatus::Operational;

    fn diff(old: &SourceData, new: &SourceData) -> Delta {
        delta(Some(old), Some(new), None, &settings(), ts(T0), ts(T1))
    }

    #[test]
    fn a_new_fetch_of_the_same_page_changes_nothing() {
        let old = data(T0, vec![item("i", "investigating", &["a"])], OK);
        let new = data(T1, vec![item("i", "investigating", &["a"])], OK);
        assert_eq!(diff(&old, &new), Delta::default());
    }

    #[test]
    fn a_component_or_an_item_names_what_changed() {
        let old = data(T0, vec![item("i", "investigating", &["a"])], OK);
        let new = data(
            T1,
            vec![item("i", "investigating", &["a"])],
            ComponentStatus::MajorOutage,
        );
        assert_eq!(
            diff(&old, &new).components,
            BTreeSet::from(["b".to_owned()])
        );

        let new = data(T1, vec![item("i", "identified", &["a"])], OK);
        let d = diff(&old, &new);
        assert_eq!(d.components, BTreeSet::from(["a".to_owned()]));
        assert!(!d.page_wide && !d.all);

        // Gone counts as changed; an item naming no component is page-wide.
        let new = data(T1, vec![item("p", "investigating", &[])], OK);
        let d = diff(&old, &new);
        assert_eq!(d.components, BTreeSet::from(["a".to_owned()]));
        assert!(d.page_wide);
    }

    #[test]
    fn a_renamed_component_a_failure_or_stale_data_concerns_every_cluster() {
        let old = data(T0, Vec::new(), OK);
        let mut new = data(T1, Vec::new(), OK);
        Arc::make_mut(&mut new.snapshot).components[0].name = "Renamed".into();
        assert!(diff(&old, &new).all);

        let mut new = data(T1, Vec::new(), OK);
        new.fetch_error = Some(crate::pipeline::FetchFailure::from("down".to_owned()));
        assert!(diff(&old, &new).all);

        let new = data("2024-05-01T11:00:00Z", Vec::new(), OK);
        assert!(diff(&old, &new).all, "data older than `stale_after`");
    }

    #[test]
    fn a_boundary_passed_since_the_last_render_counts_as_a_change() {
        // Resolved at 12:00:30 the day before, it leaves `recent_resolved`
        // (1 d) at 12:00:30 today: between the renders at 12:00 and 12:01.
        let mut gone = item("r", "resolved", &["a"]);
        gone.resolved_at = Some(ts("2024-04-30T12:00:30Z"));
        let old = data(T0, vec![gone.clone()], OK);
        let new = data(T1, vec![gone], OK);
        assert_eq!(
            diff(&old, &new).components,
            BTreeSet::from(["a".to_owned()])
        );

        let mut m = item("m", "scheduled", &["b"]);
        m.kind = ItemKind::Maintenance;
        m.scheduled_for = Some(ts("2024-05-01T14:00:00Z"));
        m.scheduled_until = Some(ts("2024-05-01T16:00:00Z"));
        let old = data(T0, vec![m.clone()], OK);
        let new = data(T1, vec![m.clone()], OK);
        assert_eq!(
            diff(&old, &new),
            Delta::default(),
            "enters the window at 13:00"
        );
        assert_eq!(
            boundaries(&m, &settings()),
            [ts("2024-05-01T13:00:00Z"), ts("2024-05-01T16:00:00Z")]
        );
    }

    #[test]
    fn the_same_snapshot_again_changes_only_what_the_clock_moved() {
        let mut gone = item("r", "resolved", &["a"]);
        gone.resolved_at = Some(ts("2024-04-30T12:00:30Z"));
        let old = data(T0, vec![gone, item("i", "investigating", &["b"])], OK);
        let new = SourceData {
            snapshot: Arc::clone(&old.snapshot),
            fetch_error: None,
        };
        assert_eq!(
            diff(&old, &new).components,
            BTreeSet::from(["a".to_owned()]),
            "the resolved item left its window; `i` did not change"
        );
    }

    #[test]
    fn a_preview_says_what_it_touched_without_a_comparison() {
        let old = data(T0, vec![item("i", "investigating", &["a"])], OK);
        let mut new = old.clone();
        let touched = crate::serve::preview::apply(
            Arc::make_mut(&mut new.snapshot),
            &crate::serve::preview::Preview::Incident(Box::new(Incident {
                updated_at: Some(ts("2024-05-01T11:00:00Z")),
                ..item("p", "investigating", &[])
            })),
        )
        .unwrap();
        let d = delta(
            Some(&old),
            Some(&new),
            Some(&touched),
            &settings(),
            ts(T0),
            ts(T1),
        );
        assert!(d.page_wide && !d.all, "a new item naming no component");
        assert!(d.components.is_empty());
        // The same as the comparison finds.
        assert_eq!(d, diff(&old, &new));

        // A failure since the last render still concerns every cluster.
        new.fetch_error = Some(crate::pipeline::FetchFailure::from("down".to_owned()));
        let d = delta(
            Some(&old),
            Some(&new),
            Some(&touched),
            &settings(),
            ts(T0),
            ts(T1),
        );
        assert!(d.all);
    }

    /// A configuration of one source `s` (a public page) and the
    /// clusters `names`, each showing component `A`.
    fn config_of(names: &[&str]) -> Config {
        use std::fmt::Write as _;
        let mut text = "[sources.s]\nkind = \"statuspage-public\"\n\
                        url = \"https://status.example.org\"\n"
            .to_owned();
        for n in names {
            writeln!(text, "[clusters.{n}]\nsource = \"s\"\ncomponents = [\"A\"]").unwrap();
        }
        Config::parse(&text, std::path::Path::new("/etc/statusmotd/mapping.toml")).unwrap()
    }

    /// A change after a render plans the clusters it concerns, but every
    /// cluster under another configuration (even one with the same
    /// clusters) and after a render that left a cluster unplanned.
    #[test]
    fn a_change_plans_its_clusters_or_all_of_them_under_another_configuration() {
        let gathered = |d: SourceData| Gathered {
            sources: BTreeMap::from([("s".to_owned(), d)]),
            ..Gathered::default()
        };
        let first = || gathered(data(T0, vec![item("i", "investigating", &["a"])], OK));
        let next = gathered(data(T1, vec![item("i", "identified", &["a"])], OK));
        let renderer = crate::render::Renderer::new(None).unwrap();
        let recorded = |config: &Config, names: &[&str]| {
            let clusters: Vec<_> = names.iter().map(|n| &config.clusters[*n]).collect();
            let data = first();
            let plan = crate::pipeline::plan(config, &renderer, &clusters, &data, ts(T0));
            assert!(plan.errors.is_empty());
            let mut inputs = Inputs::default();
            inputs.record(config, Arc::new(data), plan, ts(T0));
            inputs
        };

        let two = config_of(&["x", "y"]);
        let inputs = recorded(&two, &["x", "y"]);
        let dirty = |config: &Config| inputs.dirty(config, &next, ts(T1), &BTreeMap::new());
        // Both read component `a`, which the item names.
        assert_eq!(dirty(&two), Some(vec!["x".to_owned(), "y".to_owned()]));
        let one = config_of(&["x"]);
        assert_eq!(dirty(&one), None, "another configuration");
        assert_eq!(
            dirty(&config_of(&["x", "y"])),
            None,
            "the same clusters, read again"
        );

        // `y` was never planned: the next render plans every cluster.
        let inputs = recorded(&two, &["x"]);
        assert_eq!(inputs.dirty(&two, &next, ts(T1), &BTreeMap::new()), None);
        // Nor does the clock alone skip it.
        let same = gathered(data(T0, vec![item("i", "investigating", &["a"])], OK));
        assert_eq!(inputs.dirty(&two, &same, ts(T1), &BTreeMap::new()), None);
        let inputs = recorded(&one, &["x"]);
        assert_eq!(
            inputs.dirty(&one, &same, ts(T1), &BTreeMap::new()),
            Some(Vec::new()),
            "nothing changed"
        );
    }

    #[test]
    fn readers_find_the_clusters_a_change_concerns() {
        let part = |source: &str, ids: &[&str], page_wide: bool| Part {
            source: source.into(),
            selection: ids.iter().map(|i| (*i).to_owned()).collect(),
            page_wide,
        };
        let reads = BTreeMap::from([
            ("a".to_owned(), vec![part("s", &["x"], true)]),
            (
                "b".to_owned(),
                vec![part("s", &["y"], false), part("t", &["x"], false)],
            ),
            ("c".to_owned(), vec![part("t", &["z"], true)]),
        ]);
        let readers = Readers::of(&reads);
        let find = |source: &str, d: Delta| {
            let mut out = BTreeSet::new();
            readers.concerned(source, &d, &mut out);
            out.into_iter().map(str::to_owned).collect::<Vec<_>>()
        };
        let ids = |ids: &[&str]| ids.iter().map(|i| (*i).to_owned()).collect();
        assert_eq!(
            find(
                "s",
                Delta {
                    components: ids(&["x"]),
                    ..Delta::default()
                }
            ),
            ["a"]
        );
        assert_eq!(
            find(
                "t",
                Delta {
                    components: ids(&["x"]),
                    ..Delta::default()
                }
            ),
            ["b"]
        );
        assert_eq!(
            find(
                "t",
                Delta {
                    page_wide: true,
                    ..Delta::default()
                }
            ),
            ["c"]
        );
        assert_eq!(
            find(
                "s",
                Delta {
                    all: true,
                    ..Delta::default()
                }
            ),
            ["a", "b"]
        );
        assert!(find(
            "u",
            Delta {
                all: true,
                ..Delta::default()
            }
        )
        .is_empty());
    }
}
