//! The public status API v2 of any Statuspage page: `summary.json` for
//! components, groups and what is open now, `incidents.json` and
//! `scheduled-maintenances.json` for the 50 most recent items, which include
//! the recently resolved ones.

use jiff::Timestamp;
use serde::Deserialize;

use super::raw::{self, RawComponent, RawIncident, RawPage};
use super::{decode, Expect, FetchError, FetchErrorKind, Http};
use crate::model::Snapshot;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Summary {
    page: Option<RawPage>,
    #[serde(deserialize_with = "raw::list")]
    components: Vec<RawComponent>,
    #[serde(deserialize_with = "raw::list")]
    incidents: Vec<RawIncident>,
    #[serde(deserialize_with = "raw::list")]
    scheduled_maintenances: Vec<RawIncident>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Incidents {
    #[serde(deserialize_with = "raw::list")]
    incidents: Vec<RawIncident>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Maintenances {
    #[serde(deserialize_with = "raw::list")]
    scheduled_maintenances: Vec<RawIncident>,
}

/// The API root of a page: its address, with or without a trailing slash or
/// the `/api/v2` people sometimes paste along.
fn api_root(url: &str) -> String {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix("/api/v2").unwrap_or(url);
    format!("{url}/api/v2")
}

pub(super) async fn fetch(http: &Http<'_>, url: &str) -> Result<Snapshot, FetchError> {
    let root = api_root(url);
    let summary_url = format!("{root}/summary.json");
    let incidents_url = format!("{root}/incidents.json");
    let maintenances_url = format!("{root}/scheduled-maintenances.json");
    let (summary, incidents, maintenances) = tokio::try_join!(
        http.get_json::<Summary>(&summary_url, Expect::Object),
        optional(http.get_json::<Incidents>(&incidents_url, Expect::Object)),
        optional(http.get_json::<Maintenances>(&maintenances_url, Expect::Object)),
    )?;

    Ok(normalize(url, summary, incidents, maintenances))
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
    Ok(normalize(url, summary, incidents, maintenances).sanitized())
}

fn normalize(
    url: &str,
    summary: Summary,
    incidents: Option<Incidents>,
    maintenances: Option<Maintenances>,
) -> Snapshot {
    let mut page = summary.page.unwrap_or_default().into_page();
    if page.id.is_empty() {
        page.id = url.trim().trim_end_matches('/').to_string();
        page.name.clone_from(&page.id);
    }
    if page.url.is_none() {
        page.url = Some(url.trim().trim_end_matches('/').to_string());
    }
    let (components, groups) = raw::components_and_groups(summary.components, Vec::new());

    let open = summary.incidents.into_iter().map(|i| (i, false));
    let scheduled = summary
        .scheduled_maintenances
        .into_iter()
        .map(|i| (i, true));
    let recent = incidents
        .unwrap_or_default()
        .incidents
        .into_iter()
        .map(|i| (i, false));
    let recent_scheduled = maintenances
        .unwrap_or_default()
        .scheduled_maintenances
        .into_iter()
        .map(|i| (i, true));
    let incidents = raw::merge_incidents(
        open.chain(scheduled)
            .chain(recent)
            .chain(recent_scheduled)
            .filter_map(|(i, scheduled)| i.into_incident(scheduled)),
    );

    Snapshot {
        page,
        fetched_at: Timestamp::now(),
        components,
        groups,
        incidents,
    }
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
