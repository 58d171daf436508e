//! What `serve` asks upstream with: per source, the validators of the
//! snapshot it holds (`ETag`, `Last-Modified`, the digest of the answers)
//! and the bodies of those answers, in memory, so that a poll or a
//! webhook's fetch of a Statuspage page (API v1 or v2) asks only "changed
//! since?" (see [`crate::source::conditional`]). A restart begins with a
//! full fetch.
//!
//! Validators describe one snapshot, so they are used only once the
//! renderer has taken that snapshot: a fetch offers them ([`Held::offer`]),
//! and the renderer, having accepted the snapshot they came with, makes
//! them current ([`Held::accepted`]). After a failed fetch or a suspicious
//! answer the store keeps the last good snapshot, and the current
//! validators still describe it; a webhook preview, which changes the
//! snapshot in place, forgets them.
//! "Unchanged" is believed only when it is about the current ones
//! ([`Held::unchanged`]); otherwise the source is fetched again in full.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::Timestamp;

use crate::source::conditional::Validators;

/// What a fetch of `serve` brought.
#[derive(Debug)]
pub enum Fetched {
    /// A new snapshot, sanitized.
    Snapshot(crate::model::Snapshot),
    /// The page is as the validators held describe: these are its
    /// validators now.
    Unchanged(Validators),
}

/// Beside the snapshots just saved, in `state_dir`: the validators made
/// current with them (`keep`: source, validators, the snapshot's
/// `fetched_at`), and that upstream confirmed the snapshots of
/// `confirmed` now, so that after a restart their age counts from this
/// confirmation (see [`crate::oneshot::confirmed_at`]). A failure only
/// costs that. Runs on a blocking thread after the render.
pub fn keep(
    state_dir: &std::path::Path,
    keep: Vec<(String, Validators, Timestamp)>,
    confirmed: &[String],
) {
    // One at a time: two renders' writes never interleave.
    static WRITING: Mutex<()> = Mutex::new(());
    let _writing = WRITING.lock().unwrap_or_else(PoisonError::into_inner);
    let now = Timestamp::now();
    for (source, validators, fetched_at) in keep {
        if let Err(e) =
            crate::oneshot::keep_validators(state_dir, &source, validators, fetched_at, now)
        {
            tracing::debug!(source = %source, "cannot keep the validators: {e}");
        }
    }
    crate::oneshot::confirm(state_dir, confirmed, now);
}

#[derive(Debug, Default)]
struct Entry {
    /// The validators of the snapshot the store holds.
    current: Option<Arc<Validators>>,
    /// Those a fetch brought, with the `fetched_at` of its snapshot and
    /// the bodies it received anew.
    pending: Option<(Arc<Validators>, Timestamp, BTreeSet<String>)>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Held {
    sources: Mutex<BTreeMap<String, Entry>>,
}

impl Held {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.sources.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What to ask `source` with: the validators of the snapshot held.
    pub fn prior(&self, source: &str) -> Option<Arc<Validators>> {
        self.lock().get(source)?.current.clone()
    }

    /// A fetch of `source` brought a snapshot fetched at `fetched_at`,
    /// whose answers carried `validators`; `prior` is what it asked with,
    /// whose bodies still described are held on.
    pub fn offer(
        &self,
        source: &str,
        mut validators: Validators,
        prior: Option<&Validators>,
        fetched_at: Timestamp,
    ) {
        if validators.digest.is_empty() {
            return; // a kind that is never asked conditionally
        }
        let received: BTreeSet<String> = validators.bodies.keys().cloned().collect();
        if let Some(prior) = prior {
            validators.carry_bodies(prior);
        }
        self.lock().entry(source.to_owned()).or_default().pending =
            Some((Arc::new(validators), fetched_at, received));
    }

    /// The renderer took the result of a fetch of `source`: the snapshot
    /// fetched at `fetched_at`, or `None` when it kept the last good one.
    /// Returns the validators made current, with only the bodies received
    /// anew, to keep in `state_dir` beside the snapshot.
    pub fn accepted(&self, source: &str, fetched_at: Option<Timestamp>) -> Option<Validators> {
        let mut sources = self.lock();
        let entry = sources.entry(source.to_owned()).or_default();
        let pending = entry.pending.take();
        // Kept the last good one: the current validators still describe it.
        let fetched_at = fetched_at?;
        entry.current = None;
        let (validators, at, received) = pending?;
        if at != fetched_at {
            // Those of another fetch: the one accepted brought none.
            return None;
        }
        entry.current = Some(validators.clone());
        let mut to_keep = (*validators).clone();
        to_keep.bodies.retain(|url, _| received.contains(url));
        Some(to_keep)
    }

    /// Upstream answered `validators` for `source`, the same page as
    /// before: true when they are about the snapshot held (then they are
    /// current now); false when the source must be fetched again in full.
    pub fn unchanged(&self, source: &str, mut validators: Validators) -> bool {
        let mut sources = self.lock();
        let Some(entry) = sources.get_mut(source) else {
            return false;
        };
        let Some(current) = &entry.current else {
            return false;
        };
        if current.digest != validators.digest {
            entry.current = None;
            return false;
        }
        validators.carry_bodies(current);
        entry.current = Some(Arc::new(validators));
        true
    }

    /// Forgets the validators of `source`: its next fetch asks in full.
    pub fn forget(&self, source: &str) {
        self.lock().remove(source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::conditional::DocumentValidators;

    fn validators(digest: &str, body: &[u8]) -> Validators {
        let url = "http://x/api/v2/summary.json".to_owned();
        Validators {
            documents: BTreeMap::from([(
                url.clone(),
                DocumentValidators {
                    etag: Some("\"e\"".into()),
                    body: Some(hex::encode(crate::hash::of(body))),
                    ..DocumentValidators::default()
                },
            )]),
            digest: digest.into(),
            bodies: BTreeMap::from([(url, body.to_vec())]),
            kept_in: None,
        }
    }

    #[test]
    fn validators_become_current_only_with_the_snapshot_they_came_with() {
        let held = Held::default();
        let at: Timestamp = "2025-06-01T12:00:00Z".parse().unwrap();
        let later: Timestamp = "2025-06-01T12:01:00Z".parse().unwrap();
        held.offer("s", validators("a", b"x"), None, at);
        assert!(held.prior("s").is_none(), "not before the renderer took it");
        assert!(held.accepted("s", Some(at)).is_some());
        assert_eq!(held.prior("s").unwrap().digest, "a");
        assert!(held.unchanged("s", validators("a", b"x")));

        // A snapshot the store did not take (a suspicious drop): it keeps
        // the last good one, which the current validators still describe.
        held.offer("s", validators("b", b"y"), None, later);
        assert!(held.accepted("s", None).is_none());
        assert_eq!(held.prior("s").unwrap().digest, "a");
        assert!(held.unchanged("s", validators("a", b"x")));

        // Another fetch's validators are not taken for this one's, and the
        // old ones no longer describe what is held.
        held.offer("s", validators("c", b"z"), None, later);
        let other: Timestamp = "2025-06-01T12:02:00Z".parse().unwrap();
        assert!(held.accepted("s", Some(other)).is_none());
        assert!(held.prior("s").is_none());
        assert!(!held.unchanged("s", validators("a", b"x")));
    }

    #[test]
    fn unchanged_about_other_validators_asks_for_a_full_fetch() {
        let held = Held::default();
        let at: Timestamp = "2025-06-01T12:00:00Z".parse().unwrap();
        assert!(!held.unchanged("s", validators("a", b"x")), "nothing held");
        held.offer("s", validators("a", b"x"), None, at);
        held.accepted("s", Some(at));
        assert!(!held.unchanged("s", validators("b", b"x")));
        assert!(held.prior("s").is_none(), "the next fetch asks in full");
    }

    #[test]
    fn bodies_not_received_again_are_held_on() {
        let held = Held::default();
        let at: Timestamp = "2025-06-01T12:00:00Z".parse().unwrap();
        held.offer("s", validators("a", b"x"), None, at);
        let kept = held.accepted("s", Some(at)).unwrap();
        assert_eq!(kept.bodies.len(), 1, "received anew: kept in state_dir");
        let prior = held.prior("s").unwrap();
        // A 304 to the document: it comes without its body this time.
        let mut again = validators("b", b"x");
        again.bodies.clear();
        let later: Timestamp = "2025-06-01T12:01:00Z".parse().unwrap();
        held.offer("s", again, Some(&prior), later);
        let kept = held.accepted("s", Some(later)).unwrap();
        assert!(kept.bodies.is_empty(), "nothing new to write");
        assert_eq!(held.prior("s").unwrap().bodies.len(), 1, "held in memory");
    }
}
