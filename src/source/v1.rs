//! The manage API v1 of one page, read with an API key: components and
//! component groups, the open, upcoming and in-progress items, and the most
//! recent incidents, paging each list until a short page.
//!
//! Read conditionally ([`fetch_if_changed`]), every request whose previous
//! answer (same URL, paging included) carried an `ETag` or `Last-Modified`
//! asks "changed since?", a `304` stands for the body kept from that
//! answer, and a page whose answers are all the bytes they were is not
//! parsed at all: where such a list goes on or stops is where it went on
//! or stopped before.

use jiff::Timestamp;
use serde::de::DeserializeOwned;

use super::conditional::{self, DocumentValidators, Validators};
use super::raw::{self, Items, RawComponent, RawGroup, RawIncident};
use super::{decode_answer, Expect, FetchError, FetchErrorKind, Http};
use crate::hash::Hash;
use crate::model::{Page, Snapshot};

/// The largest page the API hands out.
const PER_PAGE: usize = 100;

/// A bound on pages per list, so that a server that always answers a full
/// page cannot keep a fetch going forever. 100 pages of 100 items is far more
/// than any page has components, and far more incidents than a MOTD shows.
const MAX_PAGES: u32 = 100;

/// How a list endpoint takes its paging parameters.
#[derive(Debug, Clone, Copy)]
enum Paging {
    /// `page` + `per_page` (components, groups, the incident sub-lists).
    PerPage,
    /// `limit` + `page` (`/incidents`).
    Limit,
}

/// The URL of page `page` of the list at `path`.
fn page_url(base: &str, path: &str, paging: Paging, page: u32) -> String {
    match paging {
        Paging::PerPage => format!("{base}/{path}?page={page}&per_page={PER_PAGE}"),
        Paging::Limit => format!("{base}/{path}?limit={PER_PAGE}&page={page}"),
    }
}

/// One page of a list as read.
struct Answer<T> {
    url: String,
    body: Vec<u8>,
    /// The digest of `body`.
    hash: Hash,
    content_type: Option<String>,
    /// What it carried, with the digest of `body`.
    validators: DocumentValidators,
    /// The bytes the previous answer to `url` carried.
    same: bool,
    /// Received now (not a body kept from before).
    received: bool,
    /// Decoded; `None` while it need not be (see [`pages`]).
    items: Option<Items<T>>,
}

pub(super) async fn fetch(
    http: &Http<'_>,
    api_base: &str,
    page_id: &str,
) -> Result<(Snapshot, Vec<String>), FetchError> {
    match fetch_if_changed(http, api_base, page_id, None).await? {
        (Some(fetched), _) => Ok(fetched),
        // Without validators from before, nothing is ever "unchanged".
        (None, _) => Err(FetchError::new(
            FetchErrorKind::UnexpectedShape,
            format!("`{api_base}` answered nothing"),
        )),
    }
}

/// [`fetch`] asking only for what changed since `prior`: `None` when every
/// answer is the bytes `prior` was made of (sent again, or `304` with the
/// body kept from before); the new validators either way. A `304` whose
/// body is not kept is asked again, plainly.
pub(super) async fn fetch_if_changed(
    http: &Http<'_>,
    api_base: &str,
    page_id: &str,
    prior: Option<&Validators>,
) -> Result<(Option<(Snapshot, Vec<String>)>, Validators), FetchError> {
    let base = format!("{}/pages/{page_id}", api_base.trim().trim_end_matches('/'));
    let since = http.opts.resolved_since;
    let no_stop = |_: &[RawIncident]| false;
    let older_than_since = |items: &[RawIncident]| {
        since.is_some_and(|since| {
            !items.is_empty()
                && items
                    .iter()
                    .all(|i| i.newest_time().is_some_and(|t| t < since))
        })
    };
    // A component row carries a `group` flag, so `/components` can list the
    // group rows with their names; `/component-groups` is read only when a
    // component names a group that has no row there. A refresh then costs
    // five requests plus paging, or six when the group list is needed.
    let components_and_groups = async {
        let rows =
            pages::<RawComponent>(http, &base, "components", Paging::PerPage, |_| false, prior)
                .await?;
        // The same rows as before need the group list as before.
        let (rows, needed) = if rows.iter().all(|a| a.same) {
            let first = page_url(&base, "component-groups", Paging::PerPage, 1);
            let needed = prior.is_some_and(|p| p.documents.contains_key(&first));
            (rows, needed)
        } else {
            let rows = decoded(rows).await?;
            let needed = raw::missing_group_rows(
                rows.iter()
                    .filter_map(|a| a.items.as_ref())
                    .flat_map(|i| i.items.iter()),
            );
            (rows, needed)
        };
        let groups = if needed {
            pages::<RawGroup>(
                http,
                &base,
                "component-groups",
                Paging::PerPage,
                |_| false,
                prior,
            )
            .await?
        } else {
            Vec::new()
        };
        Ok::<_, FetchError>((rows, groups))
    };
    // The rate limit (1/s per key over a rolling minute) allows this short
    // burst; paging within each list is sequential.
    let ((rows, groups), unresolved, upcoming, active, recent) = tokio::try_join!(
        components_and_groups,
        pages::<RawIncident>(
            http,
            &base,
            "incidents/unresolved",
            Paging::PerPage,
            no_stop,
            prior
        ),
        pages::<RawIncident>(
            http,
            &base,
            "incidents/upcoming",
            Paging::PerPage,
            no_stop,
            prior
        ),
        pages::<RawIncident>(
            http,
            &base,
            "incidents/active_maintenance",
            Paging::PerPage,
            no_stop,
            prior
        ),
        pages::<RawIncident>(
            http,
            &base,
            "incidents",
            Paging::Limit,
            older_than_since,
            prior
        ),
    )?;

    let validators = validators_of(&[
        &described(&rows),
        &described(&groups),
        &described(&unresolved),
        &described(&upcoming),
        &described(&active),
        &described(&recent),
    ]);
    if prior.is_some_and(|p| p.digest == validators.digest) {
        return Ok((None, validators));
    }
    let page_id = page_id.to_owned();
    let built = super::off_the_workers(move || {
        let rows = collect(rows)?;
        let groups = collect(groups)?;
        let unresolved = collect(unresolved)?;
        let upcoming = collect(upcoming)?;
        let active = collect(active)?;
        let recent = collect(recent)?;
        Ok(assemble(
            &page_id, rows, groups, unresolved, upcoming, active, recent,
        ))
    })
    .await?;
    Ok((Some(built), validators))
}

/// What the answers of one list carried: URL, validators, body when it is
/// to be kept, the body itself, and its digest.
type Described<'a> = Vec<(&'a str, &'a DocumentValidators, bool, &'a [u8], Hash)>;

fn described<T>(answers: &[Answer<T>]) -> Described<'_> {
    answers
        .iter()
        .map(|a| {
            (
                a.url.as_str(),
                &a.validators,
                a.received && a.validators.asks(),
                a.body.as_slice(),
                a.hash,
            )
        })
        .collect()
}

/// The validators of every answer, the bodies to keep, and the digest over
/// the lists in a fixed order (URL and bytes of each page).
fn validators_of(lists: &[&Described<'_>]) -> Validators {
    let mut v = Validators::default();
    let mut parts: Vec<Option<Hash>> = Vec::new();
    for list in lists {
        for (url, doc, keep, body, hash) in *list {
            parts.push(Some(crate::hash::of(url.as_bytes())));
            parts.push(Some(*hash));
            v.documents.insert((*url).to_owned(), (*doc).clone());
            if *keep {
                v.bodies.insert((*url).to_owned(), body.to_vec());
            }
        }
        // Where one list ends: a page moving to the next list is a change.
        parts.push(None);
    }
    v.digest = conditional::digest(&parts);
    v
}

/// The snapshot of the decoded lists.
fn assemble(
    page_id: &str,
    rows: Items<RawComponent>,
    groups: Items<RawGroup>,
    unresolved: Items<RawIncident>,
    upcoming: Items<RawIncident>,
    active: Items<RawIncident>,
    recent: Items<RawIncident>,
) -> (Snapshot, Vec<String>) {
    let skipped: Vec<String> = [
        &rows.skipped,
        &groups.skipped,
        &unresolved.skipped,
        &upcoming.skipped,
        &active.skipped,
        &recent.skipped,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    let (components, groups) = raw::components_and_groups(rows.items, groups.items);
    let incidents = raw::merge_incidents(
        unresolved
            .items
            .into_iter()
            .map(|i| (i, false))
            .chain(upcoming.items.into_iter().map(|i| (i, true)))
            .chain(active.items.into_iter().map(|i| (i, true)))
            .chain(recent.items.into_iter().map(|i| (i, false)))
            .filter_map(|(i, scheduled)| i.into_incident(scheduled)),
    );

    // The page's own name would take one more request (`GET /pages/{id}`)
    // against a tight rate limit; the id names the page well enough, and the
    // configuration names the source anyway.
    let snapshot = Snapshot {
        page: Page {
            id: page_id.to_string(),
            name: page_id.to_string(),
            url: None,
        },
        fetched_at: Timestamp::now(),
        components,
        groups,
        incidents,
    };
    (snapshot, skipped)
}

/// Reads every page of one list until a short or empty page, a page `stop`
/// says ends it, or [`MAX_PAGES`]. A page whose bytes are those of its
/// previous answer is not decoded: the list goes on after it when it went
/// on before. Items of an impossible shape are left out and described in
/// `skipped`; they still count towards a full page.
async fn pages<T: DeserializeOwned + Send + 'static>(
    http: &Http<'_>,
    base: &str,
    path: &str,
    paging: Paging,
    stop: impl Fn(&[T]) -> bool,
    prior: Option<&Validators>,
) -> Result<Vec<Answer<T>>, FetchError> {
    let mut all = Vec::new();
    for page in 1..=MAX_PAGES {
        let url = page_url(base, path, paging, page);
        let read = conditional::read(http, &url, prior).await?;
        let digest = hex::encode(read.hash);
        let same = prior
            .and_then(|p| p.documents.get(&url))
            .and_then(|d| d.body.as_deref())
            == Some(digest.as_str());
        let mut validators = read.validators;
        validators.body = Some(digest);
        let mut answer = Answer {
            url,
            body: read.body,
            hash: read.hash,
            content_type: read.content_type,
            validators,
            same,
            received: read.received,
            items: None,
        };
        let done = if same {
            let next = page_url(base, path, paging, page + 1);
            !prior.is_some_and(|p| p.documents.contains_key(&next))
        } else {
            answer = decoded_one(answer).await?;
            let items = answer.items.as_ref().map_or(&[][..], |i| &i.items[..]);
            let count = answer
                .items
                .as_ref()
                .map_or(0, |i| i.items.len() + i.skipped.len());
            count < PER_PAGE || stop(items)
        };
        all.push(answer);
        if done {
            return Ok(all);
        }
    }
    tracing::warn!("`{base}/{path}` still had more after {MAX_PAGES} pages; reading no further");
    Ok(all)
}

/// `answer` with its items decoded, off the async workers.
async fn decoded_one<T: DeserializeOwned + Send + 'static>(
    answer: Answer<T>,
) -> Result<Answer<T>, FetchError> {
    let mut answers = decoded(vec![answer]).await?;
    answers.pop().ok_or_else(|| {
        FetchError::new(
            FetchErrorKind::UnexpectedShape,
            "decoding the answer failed".to_owned(),
        )
    })
}

/// `answers` with every one's items decoded, off the async workers.
async fn decoded<T: DeserializeOwned + Send + 'static>(
    mut answers: Vec<Answer<T>>,
) -> Result<Vec<Answer<T>>, FetchError> {
    super::off_the_workers(move || {
        for a in &mut answers {
            if a.items.is_none() {
                a.items = Some(decode_answer(
                    &a.url,
                    &a.body,
                    a.content_type.clone(),
                    Expect::Array,
                )?);
            }
        }
        Ok(answers)
    })
    .await
}

/// The items of a list's pages, decoding those not decoded yet; skipped
/// items say which page they came from.
fn collect<T: DeserializeOwned>(answers: Vec<Answer<T>>) -> Result<Items<T>, FetchError> {
    let mut all: Items<T> = Items::default();
    for a in answers {
        let items = match a.items {
            Some(items) => items,
            None => decode_answer(&a.url, &a.body, a.content_type, Expect::Array)?,
        };
        let url = a.url;
        all.skipped.extend(
            items
                .skipped
                .into_iter()
                .map(|s| format!("skipped {s} (from `{url}`)")),
        );
        all.items.extend(items.items);
    }
    Ok(all)
}
