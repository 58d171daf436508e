//! The requests of a one-shot `render`, kept from the last run so that the
//! next one sends them before it reads its configuration.
//!
//! Reading and validating `mapping.toml` takes a millisecond or more (most
//! of it the TOML syntax), and upstream answers only once it is asked. So
//! a render that fetched keeps in `state_dir/render.requests.json` what it
//! asked for (each source's page, the request timeout and retries) with a
//! digest of the configuration's bytes. The next render finds that file
//! through the `[settings]` table alone, and when the digest is that of
//! the file it is about to read, sends those requests first and reads the
//! configuration while upstream prepares its answers.
//!
//! The early requests are used only if the configuration, read in full,
//! makes the very same [`Plan`]; otherwise they are dropped and the render
//! asks as it always does. Only public pages are planned: a key is never
//! kept, and a configuration with a manage-API source reads it first.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{send, Pending, TURNS_BEFORE_CHECK};
use crate::config::{Config, SourceKind};
use crate::source::{Endpoint, FetchOptions};

/// The plan's file in `state_dir`.
const PLAN_FILE: &str = "render.requests.json";

/// What a one-shot render asks upstream, and the configuration it comes
/// from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The program that made the plan: another reads its own.
    program: String,
    /// The configuration file, absolute.
    config: PathBuf,
    /// [`crate::hash`] of its bytes, in hex.
    digest: String,
    /// Where its state is kept, absolute: where the plan is.
    state_dir: PathBuf,
    /// `request_timeout`, in milliseconds.
    timeout_ms: u64,
    retries: u32,
    /// The public pages asked, by source name, in the order asked.
    pages: Vec<(String, String)>,
}

impl Plan {
    /// The plan of a render of the sources `names` of `config`, read from
    /// `text`: `None` when one of them is not a public page, or is one
    /// whose address carries a user name or password.
    pub fn of(config: &Config, text: &str, names: &[String]) -> Option<Plan> {
        let pages = names
            .iter()
            .map(|name| match &config.sources.get(name)?.kind {
                SourceKind::Public { url } if !has_userinfo(url) => {
                    Some((name.clone(), url.clone()))
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let opts = crate::pipeline::fetch_options(config, Timestamp::UNIX_EPOCH);
        Some(Plan {
            program: env!("CARGO_PKG_VERSION").to_owned(),
            config: absolute(&config.path),
            digest: digest(text),
            state_dir: absolute(&config.settings.state_dir),
            timeout_ms: u64::try_from(opts.timeout.as_millis()).unwrap_or(u64::MAX),
            retries: opts.retries,
            pages,
        })
    }

    /// The plan kept for the configuration file at `path` whose bytes are
    /// `text`, if there is one, made by this program from these very bytes.
    pub fn find(path: &Path, text: &str) -> Option<Plan> {
        let state_dir = state_dir_named(path, text)?;
        let bytes = std::fs::read(state_dir.join(PLAN_FILE)).ok()?;
        let plan: Plan = serde_json::from_slice(&bytes).ok()?;
        let ours = plan.program == env!("CARGO_PKG_VERSION")
            && plan.config == absolute(path)
            && plan.state_dir == state_dir
            && plan.digest == digest(text);
        ours.then_some(plan)
    }

    /// Keeps the plan for the next render; a failure only costs that
    /// render its early requests.
    pub fn save(&self) -> crate::Result<()> {
        let text = serde_json::to_vec(self)
            .map_err(|e| crate::Error::Runtime(format!("cannot serialize the requests: {e}")))?;
        super::keep_in_state(&self.state_dir, PLAN_FILE, &text)
    }

    /// Sends the planned requests on `rt` and lets them go out.
    pub fn send(self, rt: &tokio::runtime::Runtime) -> Early {
        let requests = self
            .pages
            .iter()
            .map(|(name, url)| (name.clone(), Endpoint::Public { url: url.clone() }))
            .collect();
        // As `pipeline::fetch_options` makes them for a public page (the
        // rest is v1's paging and the environment of programs run).
        let opts = FetchOptions {
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            retries: self.retries,
            ..FetchOptions::default()
        };
        let pending = send(rt, requests, &opts, &self.state_dir);
        rt.block_on(async {
            for _ in 0..TURNS_BEFORE_CHECK {
                tokio::task::yield_now().await;
            }
        });
        Early {
            plan: self,
            pending,
        }
    }
}

/// Requests sent from a kept [`Plan`], before the configuration was read.
pub struct Early {
    plan: Plan,
    pending: Pending,
}

impl Early {
    /// The requests, when the configuration as now read plans the same
    /// ones; otherwise they are dropped, cancelled where still on their way.
    pub fn take(self, now_planned: Option<&Plan>) -> Option<Pending> {
        (now_planned == Some(&self.plan)).then_some(self.pending)
    }
}

/// Whether `url` names a user or a password before its host, as the HTTP
/// client reads it; an address it cannot read is taken as one that does.
fn has_userinfo(url: &str) -> bool {
    reqwest::Url::parse(url).map_or(true, |u| !u.username().is_empty() || u.password().is_some())
}

fn digest(text: &str) -> String {
    hex::encode(crate::hash::of(text.as_bytes()))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// Where the configuration `text` at `path` keeps its state, read from its
/// `[settings]` table alone: a guess, good for finding the plan (or the
/// stamp), which is then used only if the whole configuration agrees.
pub fn state_dir_named(path: &Path, text: &str) -> Option<PathBuf> {
    let mut table = None;
    let mut end = text.len();
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        let header = line.split('#').next().unwrap_or_default().trim();
        if header.starts_with('[') {
            if table.is_some() {
                end = at;
                break;
            }
            let name = header.trim_start_matches('[').trim_end_matches(']').trim();
            if name == "settings" && !header.starts_with("[[") {
                table = Some(at + line.len());
            }
        }
        at += line.len();
    }
    let named = match table {
        Some(start) => {
            let settings: toml::Table = toml::from_str(text.get(start..end)?).ok()?;
            match settings.get("state_dir") {
                Some(toml::Value::String(dir)) => Some(PathBuf::from(dir)),
                Some(_) => return None,
                None => None,
            }
        }
        None => None,
    };
    let dir = named.unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_STATE_DIR));
    Some(if dir.is_absolute() {
        dir
    } else {
        crate::config::config_dir(path).join(dir)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guess(text: &str) -> Option<PathBuf> {
        state_dir_named(Path::new("/etc/statusmotd/mapping.toml"), text)
    }

    /// A plan names public pages only, and is found again only for the
    /// bytes and the file it was made from, by this program.
    #[test]
    fn only_public_pages_are_planned_and_found_again_for_their_own_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mapping.toml");
        let text = "[sources.a]\nkind = \"statuspage-public\"\nurl = \"http://127.0.0.1:9\"\n\
                    [sources.hpc]\nkind = \"statuspage\"\npage_id = \"abc\"\n\
                    api_key = { file = \"api-key\" }\n\
                    [clusters.x]\nsource = \"a\"\ncomponents = [\"Lustre\"]\n";
        let config = Config::parse(text, &path).unwrap();
        assert_eq!(Plan::of(&config, text, &["a".into(), "hpc".into()]), None);
        let with_user = text.replace("http://127", "http://user:pw@127");
        let config_with_user = Config::parse(&with_user, &path).unwrap();
        assert_eq!(Plan::of(&config_with_user, &with_user, &["a".into()]), None);
        assert!(has_userinfo("https://:secret@status.example.org"));
        assert!(!has_userinfo("https://status.example.org/a@b?c=@d"));
        let plan = Plan::of(&config, text, &["a".into()]).unwrap();
        assert_eq!(plan.state_dir, dir.path().join("state"));
        plan.save().unwrap();
        assert_eq!(Plan::find(&path, text), Some(plan.clone()));
        assert_eq!(Plan::find(&path, &text.replace(":9", ":10")), None);
        assert_eq!(Plan::find(&dir.path().join("other.toml"), text), None);
        let other_program = Plan {
            program: "0.0.0".to_owned(),
            ..plan
        };
        other_program.save().unwrap();
        assert_eq!(Plan::find(&path, text), None);
    }

    /// The `[settings]` table alone tells where the state is, whatever
    /// comes before or after it; without it, the default beside the file.
    #[test]
    fn the_state_directory_is_read_from_the_settings_table_alone() {
        let text = "[sources.a]\nurl = \"http://x\" # [settings]\n\n[settings] # site\n\
                    timezone = \"UTC\"\nstate_dir = 'run/state'\n\n[clusters.a]\n\
                    state_dir = \"/elsewhere\"\n";
        assert_eq!(
            guess(text),
            Some(PathBuf::from("/etc/statusmotd/run/state"))
        );
        let text = "[ settings ]\nstate_dir = \"/var/lib/statusmotd\"";
        assert_eq!(guess(text), Some(PathBuf::from("/var/lib/statusmotd")));
        assert_eq!(
            guess("[sources.a]\nkind = \"statuspage-public\"\n"),
            Some(PathBuf::from("/etc/statusmotd/state"))
        );
        assert_eq!(
            guess("[settings]\ntimezone = \"UTC\"\n[clusters.a]\n"),
            Some(PathBuf::from("/etc/statusmotd/state"))
        );
        // What the table alone cannot say is not guessed.
        assert_eq!(guess("[settings]\nstate_dir = 3\n"), None);
        assert_eq!(guess("[settings]\nstate_dir = \"\"\"\n[x]\n\"\"\"\n"), None);
    }
}
