//! Asking a page "changed since?" instead of reading it whole: conditional
//! requests (`If-None-Match` / `If-Modified-Since` from the `ETag` /
//! `Last-Modified` of the previous answers, `304 Not Modified` taken as
//! "unchanged") and a digest of the answers' bytes, so that a page that
//! sends the same bytes again is not parsed, sanitized and saved again.
//!
//! Statuspage is read this way: the public API v2 (`kind =
//! "statuspage_public"`), whose three documents are fetched whole, and the
//! manage API v1 (`kind = "statuspage"`), whose lists are paged: there each
//! page is a document of its own, and one digest covers every page of
//! every list. Every other kind is fetched as [`super::fetch_reporting`]
//! does and is never "unchanged".
//!
//! What answered "unchanged" has no data of its own: the caller reuses the
//! last good snapshot, and when it has none it must fetch again without
//! [`Validators`] (a `304` never blanks a file).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use reqwest::header::{HeaderMap, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::{RequestBuilder, StatusCode};
use serde::{Deserialize, Serialize};

use super::{Endpoint, FetchError, FetchOptions, Fetched, Http};
use crate::hash::Hash;

/// What one document's answer carried to ask with next time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentValidators {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// The document answered 404 (the v2 lists may): absent, not changed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
    /// [`crate::hash`] (hex) of the body kept for a later `304` (see
    /// [`Validators::kept_in`]), when it carried a validator; for the
    /// manage API, of every page, so that a list's page with the same
    /// bytes is known without parsing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

impl DocumentValidators {
    pub(super) fn asks(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// What a page's answers carried: per document URL its validators, and a
/// digest of all the bodies, which tells the same answer again from a new
/// one when the page sends no validators (or ignores them).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validators {
    #[serde(default)]
    pub documents: BTreeMap<String, DocumentValidators>,
    /// [`crate::hash`] (hex) over the documents in request order; empty when
    /// unknown.
    #[serde(default)]
    pub digest: String,
    /// URL -> body of each document that carried a validator, fetched
    /// anew: to keep, so that a `304` to it next to a changed document
    /// needs no request more.
    #[serde(skip)]
    pub bodies: BTreeMap<String, Vec<u8>>,
    /// Where the bodies of earlier answers are kept, one file per document
    /// named after the last part of its URL.
    #[serde(skip)]
    pub kept_in: Option<std::path::PathBuf>,
}

impl Validators {
    /// Where the body of `url` is kept under `dir`.
    pub fn body_path(dir: &std::path::Path, url: &str) -> std::path::PathBuf {
        let name = url.rsplit('/').next().unwrap_or("answer");
        dir.join(name)
    }

    /// The kept body of `url` and its digest, when it is the one these
    /// validators describe: held in [`Self::bodies`] (`serve` keeps them in
    /// memory), or in a file under [`Self::kept_in`].
    pub(super) fn kept_body(&self, url: &str) -> Option<(Vec<u8>, Hash)> {
        let wanted = self.documents.get(url)?.body.as_deref()?;
        let matches = |bytes: &[u8]| {
            let hash = crate::hash::of(bytes);
            (hex::encode(hash) == wanted).then_some(hash)
        };
        if let Some(held) = self.bodies.get(url) {
            if let Some(hash) = matches(held) {
                return Some((held.clone(), hash));
            }
        }
        let bytes = std::fs::read(Self::body_path(self.kept_in.as_deref()?, url)).ok()?;
        matches(&bytes).map(|hash| (bytes, hash))
    }

    /// Takes over from `prior` the bodies these validators still describe
    /// and did not receive anew: to hold them all in memory, where nothing
    /// is kept in files.
    pub fn carry_bodies(&mut self, prior: &Validators) {
        for (url, doc) in &self.documents {
            if self.bodies.contains_key(url) || !doc.asks() {
                continue;
            }
            let Some(wanted) = doc.body.as_deref() else {
                continue;
            };
            if let Some(body) = prior
                .bodies
                .get(url)
                .filter(|b| hex::encode(crate::hash::of(b)) == wanted)
            {
                self.bodies.insert(url.clone(), body.clone());
            }
        }
    }
}

/// What a conditional fetch found.
#[derive(Debug)]
pub enum Outcome {
    /// The page is as `Validators` describe (the previous ones, or new
    /// ones of the same bytes): reuse the last good snapshot.
    Unchanged(Validators),
    /// A new snapshot, sanitized, and what its answers carried.
    Changed(Fetched, Validators),
}

/// Fetches `endpoint`, asking only for what changed since `prior` (the
/// validators of the last good snapshot). See the module documentation.
pub async fn fetch(
    client: &reqwest::Client,
    endpoint: &Endpoint,
    opts: &FetchOptions,
    prior: Option<&Validators>,
) -> Result<Outcome, FetchError> {
    let answer = match endpoint {
        Endpoint::Public { url } => {
            let http = Http::public(client, opts, Some(Exchange::new(prior)));
            super::v2::fetch_if_changed(&http, url, prior).await?
        }
        Endpoint::Manage {
            api_base,
            page_id,
            api_key,
        } => {
            let http = Http::manage(client, opts, api_key, Some(Exchange::new(prior)));
            // As `fetch_reporting` does: a key pasted into `api_base`
            // never shows in a message.
            super::v1::fetch_if_changed(&http, api_base, page_id, prior)
                .await
                .map_err(|e| e.redact(api_key))?
        }
        _ => {
            let fetched = super::fetch_reporting(client, endpoint, opts).await?;
            return Ok(Outcome::Changed(fetched, Validators::default()));
        }
    };
    match answer {
        (None, validators) => Ok(Outcome::Unchanged(validators)),
        (Some((snapshot, skipped)), validators) => {
            let snapshot = super::sanitized(snapshot).await?;
            Ok(Outcome::Changed(Fetched { snapshot, skipped }, validators))
        }
    }
}

/// The digest of a page's documents in request order, each given by its
/// [`crate::hash`] (taken as its body came), `None` for one that answered
/// 404.
pub(super) fn digest(parts: &[Option<Hash>]) -> String {
    let mut hasher = crate::hash::Hasher::default();
    for part in parts {
        match part {
            None => hasher.update(b"-"),
            Some(hash) => {
                hasher.update(b"+");
                hasher.update(hash);
            }
        }
    }
    hex::encode(hasher.finalize())
}

/// One document as [`read`] got it.
pub(super) struct Read {
    pub body: Vec<u8>,
    pub hash: Hash,
    pub content_type: Option<String>,
    /// What its answer carried (after a `304`: what it carried before).
    pub validators: DocumentValidators,
    /// Received now, not a body kept from before.
    pub received: bool,
}

/// GETs `url` asking "changed since?" when `http` has an [`Exchange`]: a
/// `304` gives the body kept from before, or, when none is kept (or not
/// the one described), `url` is read again plainly, so a `304` never
/// stands for nothing.
pub(super) async fn read(
    http: &Http<'_>,
    url: &str,
    prior: Option<&Validators>,
) -> Result<Read, FetchError> {
    let (body, content_type) = http.get(url).await?;
    let exchange = http.validators.as_ref();
    let validators = exchange.map(|e| e.validators_of(url)).unwrap_or_default();
    if !exchange.is_some_and(|e| e.was_not_modified(url)) {
        return Ok(Read {
            hash: http.hash_of(url, &body),
            body,
            content_type,
            validators,
            received: true,
        });
    }
    if let Some((body, hash)) = prior.and_then(|p| p.kept_body(url)) {
        return Ok(Read {
            body,
            hash,
            content_type: None,
            validators,
            received: false,
        });
    }
    tracing::debug!(
        url,
        "answered 304, but its body is not kept; asking again in full"
    );
    let plain = http.unconditional();
    let (body, content_type) = plain.get(url).await?;
    let validators = plain
        .validators
        .as_ref()
        .map(|e| e.validators_of(url))
        .unwrap_or_default();
    Ok(Read {
        hash: plain.hash_of(url, &body),
        body,
        content_type,
        validators,
        received: true,
    })
}

/// The conditional side of one fetch's requests: the headers to send, the
/// validators the answers carry, and which answered `304`.
pub(super) struct Exchange<'a> {
    prior: Option<&'a Validators>,
    seen: Mutex<BTreeMap<String, DocumentValidators>>,
    not_modified: Mutex<BTreeSet<String>>,
    /// The digest of each body received, taken as it came.
    received: Mutex<BTreeMap<String, Hash>>,
}

impl<'a> Exchange<'a> {
    pub(super) fn new(prior: Option<&'a Validators>) -> Self {
        Self {
            prior,
            seen: Mutex::default(),
            not_modified: Mutex::default(),
            received: Mutex::default(),
        }
    }

    /// Notes the digest of the body of `url` just received whole.
    pub(super) fn received(&self, url: &str, hash: Hash) {
        lock(&self.received).insert(url.to_owned(), hash);
    }

    /// The digest of the body of `url` received last, if one was.
    pub(super) fn hash_received(&self, url: &str) -> Option<Hash> {
        lock(&self.received).get(url).copied()
    }

    /// `request` with `If-None-Match` / `If-Modified-Since` when the
    /// previous answer of `url` carried an `ETag` / `Last-Modified`.
    pub(super) fn ask(&self, mut request: RequestBuilder, url: &str) -> RequestBuilder {
        let Some(prior) = self.prior.and_then(|p| p.documents.get(url)) else {
            return request;
        };
        if let Some(etag) = &prior.etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(modified) = &prior.last_modified {
            request = request.header(IF_MODIFIED_SINCE, modified);
        }
        request
    }

    /// Records what the answer of `url` carried; true when it is a `304`
    /// to a conditional request, which the caller takes as "unchanged".
    pub(super) fn answered(&self, url: &str, status: StatusCode, headers: &HeaderMap) -> bool {
        let asked = self.prior.is_some_and(|p| p.documents.contains_key(url));
        if status == StatusCode::NOT_MODIFIED && asked {
            lock(&self.not_modified).insert(url.to_owned());
            return true;
        }
        if status.is_success() {
            let text = |name| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            lock(&self.seen).insert(
                url.to_owned(),
                DocumentValidators {
                    etag: text(ETAG),
                    last_modified: text(LAST_MODIFIED),
                    absent: false,
                    body: None,
                },
            );
        }
        false
    }

    pub(super) fn was_not_modified(&self, url: &str) -> bool {
        lock(&self.not_modified).contains(url)
    }

    /// The validators of `url` for next time: what its answer carried now,
    /// or, after a `304`, what it carried before.
    pub(super) fn validators_of(&self, url: &str) -> DocumentValidators {
        if let Some(v) = lock(&self.seen).get(url) {
            return v.clone();
        }
        self.prior
            .and_then(|p| p.documents.get(url))
            .cloned()
            .unwrap_or_default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_tells_an_absent_document_from_an_empty_one_and_moved_bytes() {
        let digest = |bodies: &[Option<&[u8]>]| {
            digest(
                &bodies
                    .iter()
                    .map(|b| b.map(crate::hash::of))
                    .collect::<Vec<_>>(),
            )
        };
        let a = digest(&[Some(b"ab"), Some(b"c"), None]);
        assert_eq!(a, digest(&[Some(b"ab"), Some(b"c"), None]));
        assert_ne!(a, digest(&[Some(b"a"), Some(b"bc"), None]));
        assert_ne!(a, digest(&[Some(b"ab"), Some(b"c"), Some(b"")]));
        assert_ne!(a, digest(&[Some(b"ab"), None, Some(b"c")]));
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn validators_read_back_what_was_written() {
        let v = Validators {
            documents: BTreeMap::from([(
                "http://x/api/v2/summary.json".to_owned(),
                DocumentValidators {
                    etag: Some("\"abc\"".into()),
                    last_modified: None,
                    absent: false,
                    body: Some("ff".into()),
                },
            )]),
            digest: "00".into(),
            ..Validators::default()
        };
        let text = serde_json::to_string(&v).expect("serializes");
        assert_eq!(serde_json::from_str::<Validators>(&text).ok(), Some(v));
    }
}
