//! The mapping from clusters to components: a cluster's `groups` and
//! `components`, written as upstream names or ids, resolved against a
//! snapshot into the set of component ids the view selects.
//!
//! Names are resolved on every fetch, since upstream may rename or regroup
//! components at any time; an entry that matches nothing, or a name shared by
//! two components, is a configuration error that names the cluster, the entry
//! and the candidates. An entry that resolved once and no longer does (its
//! group was renamed upstream) keeps the ids it last resolved to
//! ([`KnownIds`], kept in `state_dir`), with a warning, so that news still
//! reaches the cluster. This module also writes the skeleton of
//! `mapping init` and the report of `mapping check`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{
    validate_cluster_name, ClusterConfig, Config, Secret, SourceConfig, SourceField, SourceKind,
};
use crate::error::{Error, Result};
use crate::model::{Component, Group, Snapshot, SnapshotIndex};
use crate::view::Selection;

/// How many candidates an "unknown name" hint lists before "and N more".
const MAX_CANDIDATES: usize = 8;

/// Resolves a cluster's `groups` and `components` (each by id or by exact
/// name) against a snapshot into component ids; groups expand to their
/// children. Every bad entry of the cluster is reported at once.
pub fn resolve(cluster: &ClusterConfig, snap: &Snapshot) -> Result<Selection> {
    resolve_indexed(cluster, snap, &SnapshotIndex::new(snap))
}

/// [`resolve`] with the snapshot's index at hand: what a caller resolving
/// many clusters against one snapshot uses, so that each lookup is a hash
/// lookup instead of a scan of every component.
pub fn resolve_indexed(
    cluster: &ClusterConfig,
    snap: &Snapshot,
    index: &SnapshotIndex<'_>,
) -> Result<Selection> {
    let resolved = resolve_entries(cluster, snap, index);
    if resolved.errors.is_empty() {
        Ok(resolved.selection)
    } else {
        Err(Error::Config(resolved.errors.join("\n")))
    }
}

/// The ids each entry of each cluster last resolved to, by cluster name.
/// Kept in `state_dir` so that an entry whose name upstream changed keeps
/// selecting what it selected.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownIds {
    /// By cluster: the entries of its primary source.
    #[serde(default)]
    pub clusters: BTreeMap<String, ClusterIds>,
    /// By cluster, then further (`also`) source: the entries there.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub also: BTreeMap<String, BTreeMap<String, ClusterIds>>,
}

/// One cluster's [`KnownIds`], by entry as written in `mapping.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterIds {
    #[serde(default)]
    pub groups: BTreeMap<String, KnownGroup>,
    /// Entry -> component id.
    #[serde(default)]
    pub components: BTreeMap<String, String>,
}

/// A group as last resolved: its id, and its members then, for when the
/// group itself is gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownGroup {
    pub id: String,
    #[serde(default)]
    pub members: Vec<String>,
}

const KNOWN_IDS_FILE: &str = "resolved-ids.json";

impl KnownIds {
    /// Where they are kept.
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(KNOWN_IDS_FILE)
    }

    /// Those kept in `state_dir`; none when there is no file or it cannot be
    /// read (a warning says so: it is a fallback, not the data).
    pub fn load(state_dir: &Path) -> KnownIds {
        let path = Self::path(state_dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("ignoring `{}`: {e}", path.display());
                KnownIds::default()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => KnownIds::default(),
            Err(e) => {
                tracing::warn!("cannot read `{}`: {e}", path.display());
                KnownIds::default()
            }
        }
    }

    /// Keeps them in `state_dir`, replacing the file atomically.
    pub fn save(&self, state_dir: &Path) -> Result<()> {
        // The state directory itself, not a file: the file goes through
        // `output::replace_file`.
        #[allow(clippy::disallowed_methods)]
        std::fs::create_dir_all(state_dir)
            .map_err(Error::io("cannot create state directory", state_dir))?;
        let text = serde_json::to_vec(self)
            .map_err(|e| Error::Runtime(format!("cannot serialize the resolved ids: {e}")))?;
        crate::output::replace_file(&Self::path(state_dir), &text)
    }
}

/// A cluster resolved with the help of the ids its entries last resolved to.
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub selection: Selection,
    /// What each entry resolves to now, or still holds from before: what to
    /// keep for next time.
    pub ids: ClusterIds,
    /// One message per entry that no longer resolves and uses its last
    /// known ids instead.
    pub warnings: Vec<String>,
}

/// [`resolve_indexed`], except that an entry that no longer resolves but
/// resolved before (`known`) selects what it did then, with a warning, rather
/// than fail the cluster.
pub fn resolve_with_known(
    cluster: &ClusterConfig,
    snap: &Snapshot,
    index: &SnapshotIndex<'_>,
    known: Option<&ClusterIds>,
) -> Result<Resolution> {
    let resolved = resolve_entries(cluster, snap, index);
    let mut out = Resolution {
        selection: resolved.selection,
        ids: resolved.ids,
        warnings: Vec::new(),
    };
    let mut errors = Vec::new();
    for failed in resolved.failed {
        let last = known.and_then(|k| match failed.list {
            List::Groups => k.groups.get(&failed.entry).map(|g| {
                // The group's current members when it is still there under
                // another name, else its members of then.
                let ids: Vec<String> = match index.group(&g.id) {
                    Some(group) => member_ids(index, group),
                    None => g.members.clone(),
                };
                out.ids.groups.insert(failed.entry.clone(), g.clone());
                (vec![g.id.clone()], ids)
            }),
            List::Components => k.components.get(&failed.entry).map(|id| {
                out.ids.components.insert(failed.entry.clone(), id.clone());
                (vec![id.clone()], vec![id.clone()])
            }),
        });
        match last {
            Some((shown, ids)) => {
                let why = failed.error.lines().next().unwrap_or_default().to_owned();
                out.warnings.push(format!(
                    "{why}\n  using the ids it last resolved to: {}\n\
                     hint: upstream renamed or removed it; write the new name or the id in `mapping.toml` \
                     (`statusmotd mapping init` lists them)",
                    shown
                        .iter()
                        .map(|id| format!("`{id}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                out.selection.extend(ids);
            }
            None => errors.push(failed.error),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(Error::Config(errors.join("\n")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Groups,
    Components,
}

/// An entry that did not resolve.
struct Failed {
    list: List,
    entry: String,
    error: String,
}

struct Resolved {
    selection: Selection,
    /// Ids of the groups the cluster lists.
    groups: BTreeSet<String>,
    errors: Vec<String>,
    failed: Vec<Failed>,
    ids: ClusterIds,
}

fn resolve_entries(
    cluster: &ClusterConfig,
    snap: &Snapshot,
    index: &SnapshotIndex<'_>,
) -> Resolved {
    let mut resolved = Resolved {
        selection: Selection::new(),
        groups: BTreeSet::new(),
        errors: Vec::new(),
        failed: Vec::new(),
        ids: ClusterIds::default(),
    };
    for entry in &cluster.groups {
        match find_group(cluster, snap, index, entry) {
            Ok(group) => {
                let ids = member_ids(index, group);
                resolved.selection.extend(ids.iter().cloned());
                resolved.ids.groups.insert(
                    entry.clone(),
                    KnownGroup {
                        id: group.id.clone(),
                        members: ids,
                    },
                );
                resolved.groups.insert(group.id.clone());
            }
            Err(e) => {
                resolved.errors.push(e.clone());
                resolved.failed.push(Failed {
                    list: List::Groups,
                    entry: entry.clone(),
                    error: e,
                });
            }
        }
    }
    for entry in &cluster.components {
        match find_component(cluster, snap, index, entry) {
            Ok(component) => {
                resolved
                    .ids
                    .components
                    .insert(entry.clone(), component.id.clone());
                resolved.selection.insert(component.id.clone());
            }
            Err(e) => {
                resolved.errors.push(e.clone());
                resolved.failed.push(Failed {
                    list: List::Components,
                    entry: entry.clone(),
                    error: e,
                });
            }
        }
    }
    resolved
}

/// A group's components: those it lists and those that name it, since one
/// API may fill in only one side (Statuspage's summary fills in both, so
/// most come twice).
fn members<'a>(index: &'a SnapshotIndex<'_>, group: &'a Group) -> impl Iterator<Item = &'a str> {
    group
        .components
        .iter()
        .map(String::as_str)
        .chain(index.children(&group.id))
}

/// [`members`], each once, in the order first met.
fn member_ids(index: &SnapshotIndex<'_>, group: &Group) -> Vec<String> {
    /// Up to this many, a look back over those kept costs less than a set.
    const FEW: usize = 32;
    let all: Vec<&str> = members(index, group).collect();
    let mut ids: Vec<String> = Vec::with_capacity(all.len());
    if all.len() <= FEW {
        for id in all {
            if !ids.iter().any(|kept| kept == id) {
                ids.push(id.to_owned());
            }
        }
    } else {
        let mut seen = std::collections::HashSet::with_capacity(all.len());
        ids.extend(
            all.into_iter()
                .filter(|id| seen.insert(*id))
                .map(str::to_owned),
        );
    }
    ids
}

fn find_group<'a>(
    cluster: &ClusterConfig,
    snap: &Snapshot,
    index: &SnapshotIndex<'a>,
    entry: &str,
) -> std::result::Result<&'a Group, String> {
    // Ids win over names: an id is what users reach for to disambiguate.
    if let Some(group) = index.group(entry) {
        return Ok(group);
    }
    match index.groups_named(entry).as_slice() {
        [group] => Ok(*group),
        [] => {
            let mut message = format!(
                "cluster `{}`: group `{entry}` matches no group of source `{}`",
                cluster.name, cluster.source
            );
            if snap.groups.is_empty() {
                let _ = write!(
                    message,
                    "\nhint: source `{}` has no component groups; \
                     list single components under `components`",
                    cluster.source
                );
            } else {
                let _ = write!(
                    message,
                    "\nhint: known groups: {}",
                    candidates(entry, snap.groups.iter().map(|g| g.name.as_str()))
                );
            }
            if snap
                .components
                .iter()
                .any(|c| c.name == entry || c.id == entry)
            {
                let _ = write!(
                    message,
                    "\nhint: `{entry}` is a component; list it under `components`"
                );
            }
            Err(message)
        }
        several => Err(format!(
            "cluster `{}`: group `{entry}` is ambiguous: {}\nhint: use the id",
            cluster.name,
            several
                .iter()
                .map(|g| format!("`{}` (id `{}`)", g.name, g.id))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn find_component<'a>(
    cluster: &ClusterConfig,
    snap: &Snapshot,
    index: &SnapshotIndex<'a>,
    entry: &str,
) -> std::result::Result<&'a Component, String> {
    if let Some(component) = index.component(entry) {
        return Ok(component);
    }
    match index.components_named(entry).as_slice() {
        [component] => Ok(*component),
        [] => {
            let mut message = format!(
                "cluster `{}`: component `{entry}` matches no component of source `{}`",
                cluster.name, cluster.source
            );
            if snap.components.is_empty() {
                let _ = write!(
                    message,
                    "\nhint: source `{}` has no components",
                    cluster.source
                );
            } else {
                let _ = write!(
                    message,
                    "\nhint: known components: {}",
                    candidates(entry, snap.components.iter().map(|c| c.name.as_str()))
                );
            }
            if snap.groups.iter().any(|g| g.name == entry || g.id == entry) {
                let _ = write!(
                    message,
                    "\nhint: `{entry}` is a group; list it under `groups`"
                );
            }
            Err(message)
        }
        several => Err(format!(
            "cluster `{}`: component `{entry}` is ambiguous: {}\nhint: use the id",
            cluster.name,
            several
                .iter()
                .map(|c| describe_component(snap, c))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// `` `Login nodes` (id `abc`, group `ARCHER2`) ``
fn describe_component(snap: &Snapshot, c: &Component) -> String {
    match group_of(snap, c) {
        Some(group) => format!(
            "`{}` (id `{}`, group `{}`)",
            one_line(&c.name),
            c.id,
            one_line(&group.name)
        ),
        None => format!("`{}` (id `{}`)", one_line(&c.name), c.id),
    }
}

fn group_of<'a>(snap: &'a Snapshot, c: &Component) -> Option<&'a Group> {
    c.group_id.as_deref().and_then(|id| snap.group(id))
}

/// Lists the names a user may have meant, the likeliest first: those equal
/// to `entry` but for case, spaces and punctuation, then those containing it
/// or contained in it, then those a typo or two away, then the rest in
/// upstream order.
fn candidates<'a>(entry: &str, names: impl Iterator<Item = &'a str>) -> String {
    let wanted = fold(entry);
    let mut seen = BTreeSet::new();
    let mut ranked: Vec<(u8, &str)> = names
        .filter(|name| seen.insert(*name))
        .map(|name| {
            let folded = fold(name);
            let rank = if folded == wanted {
                0
            } else if !wanted.is_empty()
                && !folded.is_empty()
                && (folded.contains(&wanted) || wanted.contains(&folded))
            {
                1
            } else if edit_distance(&folded, &wanted) <= (wanted.chars().count() / 3).max(1) {
                2
            } else {
                3
            };
            (rank, name)
        })
        .collect();
    // Stable: equal ranks keep upstream order.
    ranked.sort_by_key(|(rank, _)| *rank);
    let mut list = ranked
        .iter()
        .take(MAX_CANDIDATES)
        .map(|(_, name)| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if ranked.len() > MAX_CANDIDATES {
        let _ = write!(list, " and {} more", ranked.len() - MAX_CANDIDATES);
    }
    list
}

/// Levenshtein distance, for spotting typos in short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

fn fold(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Turns an upstream name into a cluster name: lowercase ASCII letters and
/// digits, every other run of characters one `-`, at most 64 characters;
/// `cluster` when nothing is left. The result always passes
/// [`validate_cluster_name`].
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    slug.truncate(64);
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "cluster".to_owned()
    } else {
        debug_assert!(validate_cluster_name(slug).is_ok());
        slug.to_owned()
    }
}

/// `mapping init`: a commented `mapping.toml` from a snapshot of `source`:
/// `[settings]` and the source first, then one cluster per component group,
/// named after the group and listing it by id with its name in a comment (an
/// id survives a rename upstream); components in no group are listed in
/// comments for the user to place.
///
/// Everything upstream sent is hostile here: people pipe this into their
/// configuration. Every upstream value is a one-line TOML string
/// (`quote`) or a one-line comment (`one_line`), so none can end a line
/// and add a key of its own.
pub fn skeleton(snap: &Snapshot, source: &SourceConfig) -> String {
    let mut out = String::new();
    let page = match &snap.page.url {
        Some(url) => format!("`{}` ({})", one_line(&snap.page.name), one_line(url)),
        None => format!("`{}`", one_line(&snap.page.name)),
    };
    let _ = write!(
        out,
        "\
# mapping.toml for statusmotd, made by `statusmotd mapping init` from the page
# {page} as fetched at {fetched}.
#
# One cluster per component group below: rename, merge or drop them, add single
# components with `components = [..]`, then run `statusmotd mapping check`.
# Every key is described in the example mapping.toml shipped with statusmotd.

[settings]
output_dir = \"out\"             # relative paths are relative to this file
state_dir = \"state\"            # last good snapshots
# templates_dir = \"templates\"  # default: the embedded templates
# timezone = \"Europe/London\"   # default: the system's local zone
# upcoming = \"7d\"
# recent_resolved = \"24h\"
# stale_after = \"30m\"
# poll_interval = \"5m\"
# debounce = \"1s\"

",
        fetched = snap.fetched_at,
    );
    write_source(&mut out, source);

    let index = SnapshotIndex::new(snap);
    let mut used = BTreeSet::new();
    for group in &snap.groups {
        let slug = unique_slug(&group.name, &mut used);
        let _ = writeln!(out, "\n[clusters.{slug}]");
        let _ = writeln!(out, "source = {}", quote(&source.name));
        let _ = writeln!(
            out,
            "groups = [{}]   # {}",
            quote(&group.id),
            one_line(&group.name)
        );
        let member_ids: BTreeSet<&str> = members(&index, group).collect();
        let children: Vec<String> = snap
            .components
            .iter()
            .filter(|c| member_ids.contains(c.id.as_str()))
            .map(|c| one_line(&c.name))
            .collect();
        if !children.is_empty() {
            let _ = writeln!(out, "# in this group: {}", one_line(&children.join(", ")));
        }
        let _ = writeln!(out, "# components = []");
        let _ = writeln!(out, "# page_wide = true");
    }

    let ungrouped: Vec<&Component> = snap
        .components
        .iter()
        .filter(|c| group_of(snap, c).is_none())
        .collect();
    if !ungrouped.is_empty() {
        let _ = writeln!(
            out,
            "\n# Components in no group; add those a cluster needs to its `components`:"
        );
        for c in &ungrouped {
            let _ = writeln!(out, "#   {}   # id {}", quote(&c.name), one_line(&c.id));
        }
    }
    if snap.groups.is_empty() {
        let example = ungrouped
            .first()
            .map_or_else(|| quote("COMPONENT NAME"), |c| quote(&c.name));
        let _ = write!(
            out,
            "\n# The page has no component groups; a cluster lists single components:\n\
             # [clusters.{}]\n# source = {}\n# components = [{}]\n",
            unique_slug(&snap.page.name, &mut used),
            quote(&source.name),
            example
        );
    }
    out
}

/// `mapping init --source NAME` when the configuration already has clusters
/// and none reads `NAME` as its primary source: a `[clusters.C.also.NAME]`
/// table for each configured cluster not reading it yet, to append to
/// `mapping.toml`. Each selects every group of the page (or, on a page
/// without groups, every component), so the fragment is valid as printed;
/// the administrator keeps what concerns each cluster. Upstream names are
/// only ever in comments, as in [`skeleton`].
pub fn also_skeleton(snap: &Snapshot, source: &SourceConfig, config: &Config) -> String {
    let mut out = String::new();
    let page = match &snap.page.url {
        Some(url) => format!("`{}` ({})", one_line(&snap.page.name), one_line(url)),
        None => format!("`{}`", one_line(&snap.page.name)),
    };
    let _ = write!(
        out,
        "\
# Tables for `mapping.toml` so that its clusters also read source `{name}`,
# made by `statusmotd mapping init --source {name}` from the page
# {page} as fetched at {fetched}.
#
# Each table selects everything the page has: keep in each the groups and
# components that concern that cluster, drop the tables of clusters it does
# not concern, append the rest to `mapping.toml`, then run
# `statusmotd mapping check`.
",
        name = one_line(&source.name),
        fetched = snap.fetched_at,
    );
    let ungrouped: Vec<&Component> = snap
        .components
        .iter()
        .filter(|c| group_of(snap, c).is_none())
        .collect();
    for cluster in config.clusters.values() {
        if cluster.sources().any(|s| s == source.name) {
            let _ = writeln!(
                out,
                "\n# `{}` already reads `{}`.",
                cluster.name,
                one_line(&source.name)
            );
            continue;
        }
        let _ = writeln!(
            out,
            "\n[clusters.{}.also.{}]",
            key(&cluster.name),
            key(&source.name)
        );
        if snap.groups.is_empty() {
            let _ = writeln!(out, "components = [");
            for c in &snap.components {
                let _ = writeln!(out, "    {},   # {}", quote(&c.id), one_line(&c.name));
            }
            let _ = writeln!(out, "]");
        } else {
            let _ = writeln!(out, "groups = [");
            for g in &snap.groups {
                let _ = writeln!(out, "    {},   # {}", quote(&g.id), one_line(&g.name));
            }
            let _ = writeln!(out, "]");
            if !ungrouped.is_empty() {
                let _ = writeln!(out, "# components = [");
                for c in &ungrouped {
                    let _ = writeln!(out, "#     {},   # {}", quote(&c.id), one_line(&c.name));
                }
                let _ = writeln!(out, "# ]");
            }
        }
        let _ = writeln!(
            out,
            "# page_wide = true   # also incidents that name no component"
        );
    }
    out
}

fn write_source(out: &mut String, source: &SourceConfig) {
    let _ = writeln!(out, "[sources.{}]", key(&source.name));
    let _ = writeln!(out, "kind = {}", quote(source.kind.name()));
    for (name, value) in source.kind.fields() {
        let _ = match value {
            SourceField::Text(text) => writeln!(out, "{name} = {}", quote(&text)),
            SourceField::Toml(value) => writeln!(out, "{name} = {value}"),
            SourceField::Secret(secret) => writeln!(
                out,
                "{name} = {}   # or {{ env = .. }}, {{ file = .. }}, {{ credential = .. }}",
                secret_ref(secret)
            ),
        };
    }
    // Probes are tables of their own: the skeleton names where they come
    // from rather than write each one back.
    if let SourceKind::Probes(probes) = &source.kind {
        if !probes.include.is_empty() {
            let patterns: Vec<String> = probes
                .include
                .iter()
                .map(|p| quote(&p.to_string_lossy()))
                .collect();
            let _ = writeln!(out, "include = [{}]", patterns.join(", "));
        }
        let _ = writeln!(
            out,
            "# {} probe(s) configured: keep their [[sources.{}.probe]] tables here,\n\
             # or in files that `include` reads.",
            probes.probes.len(),
            key(&source.name)
        );
    }
}

fn secret_ref(secret: &Secret) -> String {
    match secret {
        Secret::Env(name) => format!("{{ env = {} }}", quote(name)),
        Secret::File(path) => format!("{{ file = {} }}", quote(&path.to_string_lossy())),
        Secret::Credential(name) => format!("{{ credential = {} }}", quote(name)),
    }
}

fn unique_slug(name: &str, used: &mut BTreeSet<String>) -> String {
    let base = slugify(name);
    let mut slug = base.clone();
    let mut n = 2;
    while used.contains(&slug) {
        let suffix = format!("-{n}");
        let keep = base.len().min(64 - suffix.len());
        slug = format!("{}{suffix}", base[..keep].trim_end_matches('-'));
        n += 1;
    }
    used.insert(slug.clone());
    slug
}

/// A TOML basic string on one line, whatever `s` holds: quotes and
/// backslashes escaped, and every character that ends a line or could seem
/// to (controls, U+0085, U+2028, U+2029) or hides text (bidi controls,
/// zero-width characters) written as an escape.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if breaks_or_hides(c) => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML key: bare when it can be, else quoted.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        s.to_owned()
    } else {
        quote(s)
    }
}

/// Characters a one-line rendering must not show as they are. All are in
/// the Basic Multilingual Plane, so `\uXXXX` writes each.
fn breaks_or_hides(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}'
                | '\u{2029}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

/// Upstream text made safe for a TOML comment, which ends at a line break:
/// one line, whatever `s` holds.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if breaks_or_hides(c) { ' ' } else { c })
        .collect()
}

/// `mapping check`: what does not resolve, and what no cluster shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckReport {
    /// One message per bad cluster entry or missing snapshot.
    pub errors: Vec<String>,
    /// Groups no cluster lists and none of whose components a cluster shows.
    pub unmapped_groups: Vec<String>,
    /// Components no cluster shows that are in no group, or in a group some
    /// cluster partly shows (those of wholly unmapped groups are covered by
    /// `unmapped_groups`).
    pub unmapped_components: Vec<String>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Resolves every cluster against the snapshot of its source (keyed by
/// source name) and lists the groups and components no cluster maps.
pub fn check(config: &Config, snapshots: &BTreeMap<String, Snapshot>) -> CheckReport {
    let mut report = CheckReport::default();
    let mut selected: BTreeMap<String, Selection> = BTreeMap::new();
    let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let indexes: BTreeMap<&str, SnapshotIndex<'_>> = snapshots
        .iter()
        .map(|(name, snap)| (name.as_str(), SnapshotIndex::new(snap)))
        .collect();
    // Every source a cluster reads: its primary, then its `also` sources.
    for part in config.clusters.values().flat_map(ClusterConfig::parts) {
        let Some(snap) = snapshots.get(&part.source) else {
            report.errors.push(format!(
                "cluster `{}`: no data from source `{}`",
                part.name, part.source
            ));
            continue;
        };
        let resolved = resolve_entries(&part, snap, &indexes[part.source.as_str()]);
        debug_assert_eq!(resolved.failed.len(), resolved.errors.len());
        report.errors.extend(resolved.errors);
        selected
            .entry(part.source.clone())
            .or_default()
            .extend(resolved.selection);
        listed
            .entry(part.source.clone())
            .or_default()
            .extend(resolved.groups);
    }

    let empty = BTreeSet::new();
    let several = snapshots.len() > 1;
    for (source, snap) in snapshots {
        let selected = selected.get(source).unwrap_or(&empty);
        let listed = listed.get(source).unwrap_or(&empty);
        let in_source = |s: String| {
            if several {
                format!("{s} in source `{source}`")
            } else {
                s
            }
        };
        let index = &indexes[source.as_str()];
        let mut unmapped = BTreeSet::new();
        for group in &snap.groups {
            let touched =
                listed.contains(&group.id) || members(index, group).any(|id| selected.contains(id));
            if !touched {
                unmapped.insert(group.id.as_str());
                report.unmapped_groups.push(in_source(format!(
                    "`{}` (id `{}`)",
                    one_line(&group.name),
                    group.id
                )));
            }
        }
        for c in &snap.components {
            let in_unmapped_group =
                group_of(snap, c).is_some_and(|g| unmapped.contains(g.id.as_str()));
            if !selected.contains(&c.id) && !in_unmapped_group {
                report
                    .unmapped_components
                    .push(in_source(describe_component(snap, c)));
            }
        }
    }
    report
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.errors.is_empty() {
            let n = self.errors.len();
            writeln!(
                f,
                "{n} {} in the mapping:",
                if n == 1 { "error" } else { "errors" }
            )?;
            for e in &self.errors {
                for (i, line) in e.lines().enumerate() {
                    let indent = if i == 0 { "  " } else { "    " };
                    writeln!(f, "{indent}{line}")?;
                }
            }
        }
        if !self.unmapped_groups.is_empty() {
            writeln!(f, "groups no cluster shows:")?;
            for g in &self.unmapped_groups {
                writeln!(f, "  {g}")?;
            }
        }
        if !self.unmapped_components.is_empty() {
            writeln!(f, "components no cluster shows:")?;
            for c in &self.unmapped_components {
                writeln!(f, "  {c}")?;
            }
        }
        if self.errors.is_empty() {
            if self.unmapped_groups.is_empty() && self.unmapped_components.is_empty() {
                writeln!(
                    f,
                    "every name resolves; every group and component is mapped"
                )?;
            } else {
                writeln!(f, "every name resolves")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::SourceKind;
    use crate::model::tests::component;
    use crate::model::Page;

    fn group(id: &str, name: &str, children: &[&str]) -> Group {
        Group {
            id: id.into(),
            name: name.into(),
            components: children.iter().map(|&c| c.into()).collect(),
        }
    }

    /// An HPC page: two systems with a component of the same name each, a
    /// group nobody maps, and ungrouped components.
    fn hpc() -> Snapshot {
        Snapshot {
            page: Page {
                id: "p1".into(),
                name: "HPC \"Status\"".into(),
                url: Some("https://status.example.ac.uk".into()),
            },
            fetched_at: "2024-05-01T12:00:00Z".parse().unwrap(),
            components: vec![
                component("a1", "Login nodes", Some("ga")),
                component("a2", "Compute nodes", Some("ga")),
                component("c1", "Login nodes", Some("gc")),
                component("c2", "Compute nodes", Some("gc")),
                component("l1", "Lustre /work", None),
                component("w1", "Website", None),
                component("x1", "Tape archive", Some("gx")),
                // Only the component names its group; the group's list lacks it.
                component("a3", "GPU nodes", Some("ga")),
            ],
            groups: vec![
                group("ga", "ARCHER2", &["a1", "a2"]),
                group("gc", "Cirrus", &["c1", "c2"]),
                group("gx", "Archive\nservices", &["x1"]),
            ],
            incidents: vec![],
        }
    }

    fn cluster(name: &str, groups: &[&str], components: &[&str]) -> ClusterConfig {
        ClusterConfig {
            name: name.into(),
            source: "hpc".into(),
            groups: groups.iter().map(|&g| g.into()).collect(),
            components: components.iter().map(|&c| c.into()).collect(),
            page_wide: true,
            template: None,
            timezone: None,
            also: Vec::new(),
        }
    }

    fn ids(sel: &Selection) -> Vec<&str> {
        sel.iter().map(String::as_str).collect()
    }

    /// A group's members are kept once each, in the order first met,
    /// whether both sides name them (as Statuspage's summary does) or one;
    /// the same for a group of more than a few.
    #[test]
    fn a_group_keeps_each_member_once_in_the_order_first_met() {
        let snap = hpc();
        let index = SnapshotIndex::new(&snap);
        let members = |id: &str| member_ids(&index, index.group(id).expect("group"));
        assert_eq!(members("ga"), ["a1", "a2", "a3"]);
        let mut big = hpc();
        let n = 100;
        big.components = (0..n)
            .map(|i| component(&format!("b{i}"), &format!("B {i}"), Some("gb")))
            .collect();
        // The group lists every other one, backwards, and one twice.
        let mut listed: Vec<String> = (0..n).rev().step_by(2).map(|i| format!("b{i}")).collect();
        listed.push("b1".into());
        big.groups = vec![Group {
            id: "gb".into(),
            name: "Big".into(),
            components: listed.clone(),
        }];
        let index = SnapshotIndex::new(&big);
        let got = member_ids(&index, index.group("gb").expect("group"));
        let mut want = listed;
        want.pop();
        want.extend((0..n).step_by(2).map(|i| format!("b{i}")));
        assert_eq!(got, want);
    }

    #[test]
    fn resolves_groups_by_name_and_id_and_expands_them() {
        let snap = hpc();
        let sel = resolve(&cluster("archer2", &["ARCHER2"], &["Lustre /work"]), &snap).unwrap();
        assert_eq!(ids(&sel), ["a1", "a2", "a3", "l1"]);
        let sel = resolve(&cluster("cirrus", &["gc"], &["w1"]), &snap).unwrap();
        assert_eq!(ids(&sel), ["c1", "c2", "w1"]);
    }

    #[test]
    fn ids_win_over_names_and_resolve_ambiguity() {
        let mut snap = hpc();
        // A component whose name is another component's id.
        snap.components.push(component("zz", "w1", None));
        let sel = resolve(&cluster("x", &[], &["w1", "c1"]), &snap).unwrap();
        assert_eq!(ids(&sel), ["c1", "w1"]);
    }

    #[test]
    fn a_group_name_under_components_only_searches_components() {
        let mut snap = hpc();
        snap.components.push(component("s1", "Cirrus", None));
        let sel = resolve(&cluster("x", &[], &["Cirrus"]), &snap).unwrap();
        assert_eq!(ids(&sel), ["s1"]);
        let sel = resolve(&cluster("x", &["Cirrus"], &[]), &snap).unwrap();
        assert_eq!(ids(&sel), ["c1", "c2"]);
    }

    #[test]
    fn unknown_group_names_cluster_entry_and_close_candidates_first() {
        let e = resolve(&cluster("archer2", &["archer 2"], &[]), &hpc())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "cluster `archer2`: group `archer 2` matches no group of source `hpc`\n\
                 hint: known groups: `ARCHER2`, "
            ),
            "{e}"
        );
        assert!(e.contains("`Cirrus`"), "{e}");
    }

    #[test]
    fn unknown_entries_hint_at_the_other_list() {
        let e = resolve(&cluster("a", &["Website"], &["Cirrus"]), &hpc())
            .unwrap_err()
            .to_string();
        assert!(e.contains("group `Website` matches no group"), "{e}");
        assert!(
            e.contains("`Website` is a component; list it under `components`"),
            "{e}"
        );
        // Both bad entries are reported at once.
        assert!(e.contains("component `Cirrus` matches no component"), "{e}");
        assert!(
            e.contains("`Cirrus` is a group; list it under `groups`"),
            "{e}"
        );
    }

    #[test]
    fn candidate_list_is_capped() {
        let mut snap = hpc();
        snap.components = (0..20)
            .map(|i| component(&format!("id{i}"), &format!("Node {i}"), None))
            .collect();
        let e = resolve(&cluster("a", &[], &["node 17"]), &snap)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hint: known components: `Node 17`, "), "{e}");
        assert!(e.ends_with(" and 12 more"), "{e}");
        assert_eq!(e.matches("`Node").count(), MAX_CANDIDATES, "{e}");
    }

    #[test]
    fn ambiguous_component_lists_ids_and_groups() {
        let e = resolve(&cluster("x", &[], &["Login nodes"]), &hpc())
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cluster `x`: component `Login nodes` is ambiguous: \
             `Login nodes` (id `a1`, group `ARCHER2`), `Login nodes` (id `c1`, group `Cirrus`)\n\
             hint: use the id"
        );
    }

    #[test]
    fn ambiguous_group_lists_ids() {
        let mut snap = hpc();
        snap.groups.push(group("gc2", "Cirrus", &[]));
        let e = resolve(&cluster("x", &["Cirrus"], &[]), &snap)
            .unwrap_err()
            .to_string();
        assert!(e.contains("group `Cirrus` is ambiguous: `Cirrus` (id `gc`), `Cirrus` (id `gc2`)"));
        assert!(e.ends_with("hint: use the id"), "{e}");
    }

    #[test]
    fn no_groups_upstream_says_so() {
        let mut snap = hpc();
        snap.groups.clear();
        let e = resolve(&cluster("x", &["ARCHER2"], &[]), &snap)
            .unwrap_err()
            .to_string();
        assert!(e.contains("source `hpc` has no component groups"), "{e}");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("lustrework", "lustrewrok"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn slugs() {
        for (name, slug) in [
            ("ARCHER2 (HPE Cray EX)", "archer2-hpe-cray-ex"),
            ("Cirrus", "cirrus"),
            ("  --Login / Nodes--  ", "login-nodes"),
            ("Zürich GPU", "z-rich-gpu"),
            ("", "cluster"),
            ("…", "cluster"),
            ("../etc", "etc"),
            (".hidden", "hidden"),
        ] {
            assert_eq!(slugify(name), slug, "{name}");
        }
        let long = slugify(&"ab ".repeat(40));
        assert!(long.len() <= 64 && !long.ends_with('-'), "{long}");
        for name in [
            "ARCHER2 (HPE Cray EX)",
            "",
            "/",
            "a/b",
            "..",
            &"x-".repeat(50),
        ] {
            assert_eq!(validate_cluster_name(&slugify(name)), Ok(()), "{name}");
        }
    }

    #[test]
    fn unique_slugs() {
        let mut used = BTreeSet::new();
        assert_eq!(unique_slug("A B", &mut used), "a-b");
        assert_eq!(unique_slug("a-b", &mut used), "a-b-2");
        assert_eq!(unique_slug("A/B", &mut used), "a-b-3");
        let long = "y".repeat(70);
        assert_eq!(unique_slug(&long, &mut used).len(), 64);
        assert_eq!(
            unique_slug(&long, &mut used),
            format!("{}-2", "y".repeat(62))
        );
    }

    fn public_source() -> SourceConfig {
        SourceConfig {
            name: "hpc".into(),
            kind: SourceKind::Public {
                url: "https://status.example.ac.uk".into(),
            },
        }
    }

    #[test]
    fn skeleton_parses_back_and_maps_every_group() {
        let mut snap = hpc();
        // Same slug twice, and a name that needs quoting.
        snap.groups.push(group("gq", "archer2", &[]));
        snap.groups.push(group("gz", "Say \"hi\"", &[]));
        let text = skeleton(&snap, &public_source());
        let config = Config::parse(&text, Path::new("/etc/statusmotd/mapping.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            config.cluster_names().collect::<Vec<_>>(),
            [
                "archer2",
                "archer2-2",
                "archive-services",
                "cirrus",
                "say-hi"
            ]
        );
        // A name on two lines is given by id.
        assert_eq!(config.clusters["archive-services"].groups, ["gx"]);
        assert!(
            text.contains("groups = [\"gx\"]   # Archive services\n"),
            "{text}"
        );
        assert!(
            text.contains("# in this group: Login nodes, Compute nodes, GPU nodes\n"),
            "{text}"
        );
        // Groups are given by id, which survives a rename, with the name in
        // a comment.
        assert_eq!(config.clusters["archer2"].groups, ["ga"]);
        assert!(text.contains("groups = [\"ga\"]   # ARCHER2\n"), "{text}");
        assert_eq!(config.clusters["say-hi"].groups, ["gz"]);
        assert_eq!(config.sources["hpc"], public_source());
        // Ungrouped components are offered in comments.
        assert!(text.contains("#   \"Lustre /work\"   # id l1"), "{text}");
        assert!(text.contains("#   \"Website\"   # id w1"), "{text}");

        let report = check(&config, &BTreeMap::from([("hpc".to_owned(), snap)]));
        assert!(report.errors.is_empty(), "{report}");
        assert!(report.unmapped_groups.is_empty(), "{report}");
        assert_eq!(
            report.unmapped_components,
            ["`Lustre /work` (id `l1`)", "`Website` (id `w1`)"]
        );
    }

    #[test]
    fn also_skeleton_appended_to_a_configuration_gives_each_cluster_the_source() {
        let base =
            "[sources.site]\nkind = \"statuspage-public\"\nurl = \"https://status.example.org\"\n\
            [sources.hpc]\nkind = \"statuspage-public\"\nurl = \"https://status.example.ac.uk\"\n\
            [clusters.archer2]\nsource = \"site\"\ncomponents = [\"x\"]\n\
            [clusters.cirrus]\nsource = \"site\"\ncomponents = [\"y\"]\n\
            [clusters.cirrus.also.hpc]\ncomponents = [\"c1\"]\n";
        let config = Config::parse(base, Path::new("/m.toml")).unwrap();
        let mut snap = hpc();
        // Upstream text must stay in comments, one line each.
        snap.groups[0].name = "Evil\n[server]\non_change = [\"sh\"]".into();
        let fragment = also_skeleton(&snap, &config.sources["hpc"], &config);
        assert!(
            fragment.contains("# `cirrus` already reads `hpc`."),
            "{fragment}"
        );
        let text = format!("{base}{fragment}");
        let combined =
            Config::parse(&text, Path::new("/m.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(combined.server.on_change.is_empty());
        let also = &combined.clusters["archer2"].also;
        assert_eq!(also.len(), 1, "{fragment}");
        assert_eq!(also[0].source, "hpc");
        let mut groups = also[0].groups.clone();
        groups.sort();
        let mut all: Vec<String> = snap.groups.iter().map(|g| g.id.clone()).collect();
        all.sort();
        assert_eq!(groups, all);
        // Nothing added to the cluster that already read the source.
        assert_eq!(
            combined.clusters["cirrus"].also,
            config.clusters["cirrus"].also
        );
    }

    #[test]
    fn also_skeleton_of_a_page_without_groups_lists_its_components() {
        let base =
            "[sources.site]\nkind = \"statuspage-public\"\nurl = \"https://status.example.org\"\n\
            [sources.hpc]\nkind = \"statuspage-public\"\nurl = \"https://status.example.ac.uk\"\n\
            [clusters.archer2]\nsource = \"site\"\ncomponents = [\"x\"]\n";
        let config = Config::parse(base, Path::new("/m.toml")).unwrap();
        let mut snap = hpc();
        snap.groups.clear();
        for c in &mut snap.components {
            c.group_id = None;
        }
        let fragment = also_skeleton(&snap, &config.sources["hpc"], &config);
        let combined = Config::parse(&format!("{base}{fragment}"), Path::new("/m.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{fragment}"));
        assert_eq!(
            combined.clusters["archer2"].also[0].components.len(),
            snap.components.len()
        );
    }

    #[test]
    fn skeleton_of_a_manage_source_with_duplicate_group_names() {
        let mut snap = hpc();
        snap.groups.push(group("gc2", "Cirrus", &[]));
        let source = SourceConfig {
            name: "hpc".into(),
            kind: SourceKind::Manage {
                page_id: "kctbh9vrtdwd".into(),
                api_key: Secret::Env("STATUSPAGE_API_KEY".into()),
                api_base: "https://api.statuspage.io/v1".into(),
            },
        };
        let text = skeleton(&snap, &source);
        let config =
            Config::parse(&text, Path::new("/m.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.sources["hpc"], source);
        assert_eq!(config.clusters["cirrus"].groups, ["gc"]);
        assert_eq!(config.clusters["cirrus-2"].groups, ["gc2"]);
        let report = check(&config, &BTreeMap::from([("hpc".to_owned(), snap)]));
        assert!(report.is_ok(), "{report}");
    }

    #[test]
    fn skeleton_without_groups_still_parses() {
        let mut snap = hpc();
        snap.groups.clear();
        for c in &mut snap.components {
            c.group_id = None;
        }
        let text = skeleton(&snap, &public_source());
        let config =
            Config::parse(&text, Path::new("/m.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(config.clusters.is_empty());
        assert!(text.contains("# components = [\"Login nodes\"]"), "{text}");
    }

    #[test]
    fn check_lists_errors_and_unmapped() {
        let text =
            "[sources.hpc]\nkind = \"statuspage-public\"\nurl = \"https://status.example.ac.uk\"\n\
                    [clusters.archer2]\ngroups = [\"ARCHER2\"]\n\
                    [clusters.cirrus]\ncomponents = [\"c1\", \"Lustre /wrok\"]\n";
        let config = Config::parse(text, Path::new("/m.toml")).unwrap();
        let report = check(&config, &BTreeMap::from([("hpc".to_owned(), hpc())]));
        assert_eq!(report.errors.len(), 1, "{report}");
        assert!(report.errors[0].starts_with(
            "cluster `cirrus`: component `Lustre /wrok` matches no component of source `hpc`\n\
             hint: known components: `Lustre /work`, "
        ));
        // Cirrus is partly shown, so its missing component is listed alone;
        // the archive group is not shown at all, so it is listed as a group.
        assert_eq!(report.unmapped_groups, ["`Archive services` (id `gx`)"]);
        assert_eq!(
            report.unmapped_components,
            [
                "`Compute nodes` (id `c2`, group `Cirrus`)",
                "`Lustre /work` (id `l1`)",
                "`Website` (id `w1`)"
            ]
        );
        let shown = report.to_string();
        assert!(
            shown.starts_with("1 error in the mapping:\n  cluster `cirrus`"),
            "{shown}"
        );
        assert!(shown.contains("\n    hint: known components"), "{shown}");
        assert!(
            shown.contains("components no cluster shows:\n  `Compute nodes`"),
            "{shown}"
        );

        let report = check(&config, &BTreeMap::new());
        assert_eq!(
            report.errors,
            [
                "cluster `archer2`: no data from source `hpc`",
                "cluster `cirrus`: no data from source `hpc`"
            ]
        );
    }

    /// Everything that could end a line, open a table, close a string or
    /// start a comment, in every upstream value the skeleton writes.
    const HOSTILE: &str = "x<br>\u{2028}\u{2029}\u{85}\n\r\"'''] # = \\\n[server]\non_change = [\"sh\", \"-c\", \"id\"]\n";

    #[test]
    fn skeleton_of_hostile_names_adds_no_key() {
        let mut snap = hpc();
        // The model boundary makes names one line and drops such a url, but
        // the skeleton must not rely on it: the values go in as they are.
        snap.page.name = format!("Page{HOSTILE}");
        snap.page.url = Some(format!("https://status.example{HOSTILE}"));
        snap.groups = (0..4)
            .map(|i| group(&format!("g{i}{HOSTILE}"), &format!("G{i}{HOSTILE}"), &[]))
            .collect();
        for (i, c) in snap.components.iter_mut().enumerate() {
            c.name = format!("C{i}{HOSTILE}");
            c.id = format!("c{i}{HOSTILE}");
            c.group_id = (i % 2 == 0).then(|| format!("g{}{HOSTILE}", i % 4));
        }
        let text = skeleton(&snap, &public_source());
        assert!(!text.contains("\n[server]"), "{text}");
        assert!(!text.contains("\non_change"), "{text}");
        let value: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let keys: Vec<&str> = value.keys().map(String::as_str).collect();
        assert_eq!(keys, ["clusters", "settings", "sources"], "{text}");
        let config =
            Config::parse(&text, Path::new("/m.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.clusters.len(), 4, "{text}");
        for (name, cluster) in &config.clusters {
            // Cluster `g0-...` maps the group it is named after.
            let n = &name[1..2];
            assert_eq!(cluster.groups, [format!("g{n}{HOSTILE}")], "{name}\n{text}");
            assert!(cluster.components.is_empty());
        }
        let report = check(&config, &BTreeMap::from([("hpc".to_owned(), snap)]));
        assert!(report.is_ok(), "{report}");
    }

    proptest::proptest! {
        #[test]
        fn skeleton_of_any_names_parses_and_maps_each_group(
            names in proptest::collection::vec(proptest::prelude::any::<String>(), 1..5),
            page in proptest::prelude::any::<String>(),
        ) {
            let mut snap = hpc();
            snap.page.name.clone_from(&page);
            snap.page.url = Some(page);
            snap.groups = names
                .iter()
                .enumerate()
                .map(|(i, n)| group(&format!("{i}{n}"), n, &[]))
                .collect();
            let text = skeleton(&snap, &public_source());
            let config = Config::parse(&text, Path::new("/m.toml"))
                .map_err(|e| proptest::test_runner::TestCaseError::fail(format!("{e}\n{text}")))?;
            let value: toml::Table = toml::from_str(&text).unwrap();
            proptest::prop_assert_eq!(
                value.keys().map(String::as_str).collect::<Vec<_>>(),
                ["clusters", "settings", "sources"]
            );
            let mut mapped: Vec<String> = config
                .clusters
                .values()
                .flat_map(|c| c.groups.clone())
                .collect();
            mapped.sort();
            let mut ids: Vec<String> = snap.groups.iter().map(|g| g.id.clone()).collect();
            ids.sort();
            proptest::prop_assert_eq!(mapped, ids);
        }
    }

    #[test]
    fn quoting_keeps_every_value_on_one_line() {
        for s in [HOSTILE, "", "plain", "Zürich", "\u{202E}rtl", "tab\there"] {
            let q = quote(s);
            assert!(
                !q.contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']),
                "{q}"
            );
            let back: toml::Table = toml::from_str(&format!("k = {q}")).unwrap();
            assert_eq!(back["k"].as_str(), Some(s));
            assert!(!one_line(s).contains(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}']));
        }
        assert_eq!(key("hpc"), "hpc");
        assert_eq!(key("a.b"), "\"a.b\"");
    }

    #[test]
    fn a_renamed_group_keeps_its_last_known_ids() {
        let snap = hpc();
        let index = SnapshotIndex::new(&snap);
        let archer = cluster("archer2", &["ARCHER2"], &["Lustre /work"]);
        let first = resolve_with_known(&archer, &snap, &index, None).unwrap();
        assert!(first.warnings.is_empty());
        assert_eq!(first.ids.groups["ARCHER2"].id, "ga");
        assert_eq!(first.ids.components["Lustre /work"], "l1");

        let mut renamed = hpc();
        renamed.groups[0].name = "ARCHER-2".into();
        renamed.components[4].name = "Lustre /scratch".into();
        renamed
            .components
            .push(component("a4", "New nodes", Some("ga")));
        let index = SnapshotIndex::new(&renamed);
        assert!(resolve_with_known(&archer, &renamed, &index, None).is_err());
        let again = resolve_with_known(&archer, &renamed, &index, Some(&first.ids)).unwrap();
        assert_eq!(ids(&again.selection), ["a1", "a2", "a3", "a4", "l1"]);
        assert_eq!(again.warnings.len(), 2);
        assert!(
            again.warnings[0].starts_with("cluster `archer2`: group `ARCHER2` matches no group")
                && again.warnings[0].contains("using the ids it last resolved to: `ga`"),
            "{}",
            again.warnings[0]
        );
        // What is kept for next time still knows the old entries.
        assert_eq!(again.ids, first.ids);
    }
}
