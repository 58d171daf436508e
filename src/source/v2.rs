//! The public status API v2 of any Statuspage page: `summary.json` for
//! components, groups and what is open now, `incidents.json` and
//! `scheduled-maintenances.json` for the 50 most recent items, which include
//! the recently resolved ones.

use jiff::Timestamp;
use serde::Deserialize;

use std::collections::BTreeMap;

use super::conditional::{self, DocumentValidators, Validators};
use super::raw::{self, Items, RawComponent, RawIncident, RawPage};
use super::{decode, decode_off, Expect, FetchError, FetchErrorKind, Http};
use crate::hash::Hash;
use crate::model::Snapshot;

// The top-level lists are `Option`s so that a missing one is told from an
// empty one: a `summary.json` without `incidents` is not a page where all is
// well, it is an answer of another shape, and reading it as "all clear"
// would blank every MOTD. `null` counts as missing.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Summary {
    page: Option<RawPage>,
    components: Option<Items<RawComponent>>,
    incidents: Option<Items<RawIncident>>,
    scheduled_maintenances: Option<Items<RawIncident>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Incidents {
    incidents: Option<Items<RawIncident>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Maintenances {
    scheduled_maintenances: Option<Items<RawIncident>>,
}

/// A top-level list that must be there.
fn required<T>(list: Option<Items<T>>, key: &str, url: &str) -> Result<Items<T>, FetchError> {
    list.ok_or_else(|| {
        FetchError::new(
            FetchErrorKind::UnexpectedShape,
            format!("unexpected JSON from `{url}`: no `{key}` list"),
        )
        .with_hint("the address may not be a Statuspage page, or its API changed; the last good data stays in use")
    })
}

/// The documents of one page, each list checked to be there.
struct Documents {
    summary: Summary,
    components: Items<RawComponent>,
    open: Items<RawIncident>,
    scheduled: Items<RawIncident>,
    recent: Option<Items<RawIncident>>,
    recent_scheduled: Option<Items<RawIncident>>,
    /// Where each list came from, for the lines about skipped items.
    urls: [String; 3],
}

impl Documents {
    fn new(
        urls: [String; 3],
        mut summary: Summary,
        incidents: Option<Incidents>,
        maintenances: Option<Maintenances>,
    ) -> Result<Self, FetchError> {
        let components = required(summary.components.take(), "components", &urls[0])?;
        let open = required(summary.incidents.take(), "incidents", &urls[0])?;
        let scheduled = required(
            summary.scheduled_maintenances.take(),
            "scheduled_maintenances",
            &urls[0],
        )?;
        let recent = incidents
            .map(|i| required(i.incidents, "incidents", &urls[1]))
            .transpose()?;
        let recent_scheduled = maintenances
            .map(|m| required(m.scheduled_maintenances, "scheduled_maintenances", &urls[2]))
            .transpose()?;
        Ok(Self {
            summary,
            components,
            open,
            scheduled,
            recent,
            recent_scheduled,
            urls,
        })
    }
}

/// The API root of a page: its address, with or without a trailing slash or
/// the `/api/v2` people sometimes paste along.
fn api_root(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix("/api/v2").unwrap_or(url);
    format!("{url}/api/v2")
}

pub(super) async fn fetch(
    http: &Http<'_>,
    url: &str,
) -> Result<(Snapshot, Vec<String>), FetchError> {
    let root = api_root(url);
    let summary_url = format!("{root}/summary.json");
    let incidents_url = format!("{root}/incidents.json");
    let maintenances_url = format!("{root}/scheduled-maintenances.json");
    let (summary, incidents, maintenances) = tokio::try_join!(
        http.get_json::<Summary>(&summary_url, Expect::Object),
        optional(http.get_json::<Incidents>(&incidents_url, Expect::Object)),
        optional(http.get_json::<Maintenances>(&maintenances_url, Expect::Object)),
    )?;
    let docs = Documents::new(
        [summary_url, incidents_url, maintenances_url],
        summary,
        incidents,
        maintenances,
    )?;
    Ok(normalize(url, docs))
}

/// [`fetch`] asking only for what changed since `prior`: `None` when every
/// document answered `304` (or was absent as before), or sent exactly the
/// bytes `prior` was made of; the new validators either way. A `304` next
/// to a changed document takes the body kept for it from before (checked
/// against its digest), or, when none is kept, is fetched again plainly.
pub(super) async fn fetch_if_changed(
    http: &Http<'_>,
    url: &str,
    prior: Option<&Validators>,
) -> Result<(Option<(Snapshot, Vec<String>)>, Validators), FetchError> {
    let root = api_root(url);
    let urls = [
        format!("{root}/summary.json"),
        format!("{root}/incidents.json"),
        format!("{root}/scheduled-maintenances.json"),
    ];
    let (summary, incidents, maintenances) = tokio::try_join!(
        http.get(&urls[0]),
        optional(http.get(&urls[1])),
        optional(http.get(&urls[2])),
    )?;
    let mut answers = [Some(summary), incidents, maintenances];
    let exchange = http.validators.as_ref();
    let not_modified = |u: &str| exchange.is_some_and(|e| e.was_not_modified(u));
    // Each body's digest, taken as it came (a `304`'s empty body: none).
    let mut hashes: [Option<Hash>; 3] = [None; 3];
    for ((u, a), hash) in urls.iter().zip(&answers).zip(&mut hashes) {
        if !not_modified(u) {
            *hash = a.as_ref().map(|(body, _)| http.hash_of(u, body));
        }
    }
    let was_absent = |u: &str| {
        prior
            .and_then(|p| p.documents.get(u))
            .is_some_and(|d| d.absent)
    };
    let same = urls.iter().zip(&answers).all(|(u, a)| match a {
        Some(_) => not_modified(u),
        None => was_absent(u),
    });
    let validators_of = |answers: &[Option<(Vec<u8>, Option<String>)>; 3],
                         hashes: &[Option<Hash>; 3]| {
        let documents = urls
            .iter()
            .zip(answers)
            .map(|(u, a)| {
                let v = match a {
                    Some(_) => exchange.map(|e| e.validators_of(u)).unwrap_or_default(),
                    None => DocumentValidators {
                        absent: true,
                        ..DocumentValidators::default()
                    },
                };
                (u.clone(), v)
            })
            .collect();
        Validators {
            documents,
            digest: conditional::digest(hashes),
            ..Validators::default()
        }
    };
    if same {
        if let Some(prior) = prior {
            return Ok((None, prior.clone()));
        }
    }
    // A 304 next to a new answer: the body kept from before, or, when
    // there is none, that document read again, plainly.
    let plain = http.unconditional();
    let mut again = BTreeMap::new();
    for ((u, a), hash) in urls.iter().zip(answers.iter_mut()).zip(&mut hashes) {
        if a.is_none() || !not_modified(u) {
            continue;
        }
        if let Some((body, kept)) = prior.and_then(|p| p.kept_body(u)) {
            *a = Some((body, None));
            *hash = Some(kept);
            continue;
        }
        *a = optional(plain.get(u)).await?;
        *hash = a.as_ref().map(|(body, _)| plain.hash_of(u, body));
        if a.is_some() {
            let v = plain.validators.as_ref().map(|e| e.validators_of(u));
            again.insert(u.clone(), v.unwrap_or_default());
        }
    }
    let again_urls: Vec<String> = again.keys().cloned().collect();
    let mut validators = validators_of(&answers, &hashes);
    validators.documents.extend(again);
    // The bodies that carried a validator, new ones to keep.
    for ((u, a), hash) in urls.iter().zip(&answers).zip(&hashes) {
        let (Some((body, _)), Some(hash), Some(v)) = (a, hash, validators.documents.get_mut(u))
        else {
            continue;
        };
        if !v.asks() {
            continue;
        }
        let digest = hex::encode(hash);
        let before = prior
            .and_then(|p| p.documents.get(u))
            .and_then(|d| d.body.as_deref());
        // Read again because the kept one was unusable: keep it anew.
        let reread = again_urls.contains(u);
        if reread || before != Some(digest.as_str()) && v.body.as_deref() != Some(digest.as_str()) {
            validators.bodies.insert(u.clone(), body.clone());
        }
        v.body = Some(digest);
    }
    if prior.is_some_and(|p| p.digest == validators.digest) {
        return Ok((None, validators));
    }
    let [summary, incidents, maintenances] = answers;
    let summary = summary.ok_or_else(|| {
        FetchError::new(
            FetchErrorKind::UnexpectedShape,
            format!("`{}` answered nothing", urls[0]),
        )
    })?;
    // Each document on a blocking thread of its own, side by side, as
    // `fetch` decodes them: the page's three parses take the time of the
    // largest, not of all three.
    let (summary, incidents, maintenances) = tokio::try_join!(
        decode_off::<Summary>(&urls[0], summary, Expect::Object),
        optional_decode::<Incidents>(&urls[1], incidents),
        optional_decode::<Maintenances>(&urls[2], maintenances),
    )?;
    let url = url.to_owned();
    let decoded = super::off_the_workers(move || {
        let docs = Documents::new(urls, summary, incidents, maintenances)?;
        Ok(normalize(&url, docs))
    })
    .await?;
    Ok((Some(decoded), validators))
}

/// [`decode_off`] for a document that may have been absent.
async fn optional_decode<T: serde::de::DeserializeOwned + Send + 'static>(
    url: &str,
    answer: Option<(Vec<u8>, Option<String>)>,
) -> Result<Option<T>, FetchError> {
    match answer {
        Some(answer) => decode_off(url, answer, Expect::Object).await.map(Some),
        None => Ok(None),
    }
}

/// Normalizes payloads already at hand, in the shapes of `summary.json`,
/// `incidents.json` and `scheduled-maintenances.json`: what `statusmotd demo`
/// renders, through the same code as a live fetch.
pub fn from_payloads(
    url: &str,
    summary: &[u8],
    incidents: Option<&[u8]>,
    maintenances: Option<&[u8]>,
) -> Result<Snapshot, FetchError> {
    let summary = decode::<Summary>(url, summary, Expect::Object)?;
    let incidents = incidents
        .map(|b| decode::<Incidents>(url, b, Expect::Object))
        .transpose()?;
    let maintenances = maintenances
        .map(|b| decode::<Maintenances>(url, b, Expect::Object))
        .transpose()?;
    let urls = [url.to_owned(), url.to_owned(), url.to_owned()];
    let docs = Documents::new(urls, summary, incidents, maintenances)?;
    let (snapshot, skipped) = normalize(url, docs);
    for s in skipped {
        tracing::warn!("{s}");
    }
    Ok(snapshot.sanitized())
}

fn normalize(url: &str, docs: Documents) -> (Snapshot, Vec<String>) {
    let mut skipped = Vec::new();
    let mut note = |items: &Items<RawIncident>, what: &str, from: &str| {
        for s in &items.skipped {
            skipped.push(format!("skipped {what} {s} (from `{from}`)"));
        }
    };
    let [summary_url, incidents_url, maintenances_url] = &docs.urls;
    note(&docs.open, "incident", summary_url);
    note(&docs.scheduled, "maintenance", summary_url);
    if let Some(r) = &docs.recent {
        note(r, "incident", incidents_url);
    }
    if let Some(r) = &docs.recent_scheduled {
        note(r, "maintenance", maintenances_url);
    }
    for s in &docs.components.skipped {
        skipped.push(format!("skipped component {s} (from `{summary_url}`)"));
    }
    let summary = docs.summary;
    let mut page = summary.page.unwrap_or_default().into_page();
    if page.id.is_empty() {
        page.id = url.trim().trim_end_matches('/').to_string();
        page.name.clone_from(&page.id);
    }
    if page.url.is_none() {
        page.url = Some(url.trim().trim_end_matches('/').to_string());
    }
    let (components, groups) = raw::components_and_groups(docs.components.items, Vec::new());

    let open = docs.open.items.into_iter().map(|i| (i, false));
    let scheduled = docs.scheduled.items.into_iter().map(|i| (i, true));
    let recent = docs
        .recent
        .unwrap_or_default()
        .items
        .into_iter()
        .map(|i| (i, false));
    let recent_scheduled = docs
        .recent_scheduled
        .unwrap_or_default()
        .items
        .into_iter()
        .map(|i| (i, true));
    let incidents = raw::merge_incidents(
        open.chain(scheduled)
            .chain(recent)
            .chain(recent_scheduled)
            .filter_map(|(i, scheduled)| i.into_incident(scheduled)),
    );

    let snapshot = Snapshot {
        page,
        fetched_at: Timestamp::now(),
        components,
        groups,
        incidents,
    };
    (snapshot, skipped)
}

/// Some pages answer 404 for the incident lists; the summary alone still
/// makes a useful snapshot then. Any other failure fails the fetch.
async fn optional<T>(
    request: impl std::future::Future<Output = Result<T, FetchError>>,
) -> Result<Option<T>, FetchError> {
    match request.await {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == FetchErrorKind::Status(404) => {
            tracing::debug!("{e}; carrying on with the summary alone");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_root_tolerates_slashes_and_a_pasted_api_path() {
        for url in [
            "https://www.githubstatus.com",
            "https://www.githubstatus.com/",
            "https://www.githubstatus.com/api/v2/",
        ] {
            assert_eq!(api_root(url), "https://www.githubstatus.com/api/v2");
        }
        assert_eq!(
            api_root("http://127.0.0.1:4000"),
            "http://127.0.0.1:4000/api/v2"
        );
    }
}
