//! The manage API v1 of one page, read with an API key: components and
//! component groups, the open, upcoming and in-progress items, and the most
//! recent incidents, paging each list until a short page.

use jiff::Timestamp;
use serde::de::DeserializeOwned;

use super::raw::{self, Items, RawComponent, RawGroup, RawIncident};
use super::{Expect, FetchError, Http};
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

pub(super) async fn fetch(
    http: &Http<'_>,
    api_base: &str,
    page_id: &str,
) -> Result<(Snapshot, Vec<String>), FetchError> {
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
            list::<RawComponent>(http, &base, "components", Paging::PerPage, |_| false).await?;
        let groups = if raw::missing_group_rows(&rows.items) {
            list::<RawGroup>(http, &base, "component-groups", Paging::PerPage, |_| false).await?
        } else {
            Items::default()
        };
        Ok::<_, FetchError>((rows, groups))
    };
    // The rate limit (1/s per key over a rolling minute) allows this short
    // burst; paging within each list is sequential.
    let ((rows, groups), unresolved, upcoming, active, recent) = tokio::try_join!(
        components_and_groups,
        list::<RawIncident>(
            http,
            &base,
            "incidents/unresolved",
            Paging::PerPage,
            no_stop
        ),
        list::<RawIncident>(http, &base, "incidents/upcoming", Paging::PerPage, no_stop),
        list::<RawIncident>(
            http,
            &base,
            "incidents/active_maintenance",
            Paging::PerPage,
            no_stop
        ),
        list::<RawIncident>(http, &base, "incidents", Paging::Limit, older_than_since),
    )?;

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
    Ok((snapshot, skipped))
}

/// Reads every page of one list until a short or empty page, a page `stop`
/// says ends it, or [`MAX_PAGES`]. Items of an impossible shape are left
/// out and described in `skipped`; they still count towards a full page.
async fn list<T: DeserializeOwned + Send + 'static>(
    http: &Http<'_>,
    base: &str,
    path: &str,
    paging: Paging,
    stop: impl Fn(&[T]) -> bool,
) -> Result<Items<T>, FetchError> {
    let mut all: Items<T> = Items::default();
    for page in 1..=MAX_PAGES {
        let url = match paging {
            Paging::PerPage => format!("{base}/{path}?page={page}&per_page={PER_PAGE}"),
            Paging::Limit => format!("{base}/{path}?limit={PER_PAGE}&page={page}"),
        };
        let items: Items<T> = http.get_json(&url, Expect::Array).await?;
        let done = items.items.len() + items.skipped.len() < PER_PAGE || stop(&items.items);
        all.skipped.extend(
            items
                .skipped
                .into_iter()
                .map(|s| format!("skipped {s} (from `{url}`)")),
        );
        all.items.extend(items.items);
        if done {
            return Ok(all);
        }
    }
    tracing::warn!("`{base}/{path}` still had more after {MAX_PAGES} pages; reading no further");
    Ok(all)
}
