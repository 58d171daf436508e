//! Secrets: where a value is read from, never the value.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Where a secret is read from. The value itself is never held here, so no
/// `Debug` or error message can show it.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// `{ env = "NAME" }`
    Env(String),
    /// `{ file = "/path" }`; relative paths are joined to the configuration
    /// file's directory.
    File(PathBuf),
    /// `{ credential = "name" }`: `$CREDENTIALS_DIRECTORY/<name>`, as systemd's
    /// `LoadCredential=` provides it.
    Credential(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only where the secret lives, which is already in the configuration.
        match self {
            Secret::Env(name) => write!(f, "Secret::Env({name:?})"),
            Secret::File(path) => write!(f, "Secret::File({path:?})"),
            Secret::Credential(name) => write!(f, "Secret::Credential({name:?})"),
        }
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Env(name) => write!(f, "environment variable `{name}`"),
            Secret::File(path) => write!(f, "file `{}`", path.display()),
            Secret::Credential(name) => write!(f, "credential `{name}`"),
        }
    }
}

impl Secret {
    /// Reads the secret's value. `what` says what it is for (e.g. "the
    /// `api_key` of source `hpc`") and appears in errors; the value never does.
    pub fn reveal(&self, what: &str) -> Result<String> {
        self.reveal_with(what, |name| std::env::var_os(name))
    }

    /// [`Secret::reveal`] with the environment passed in, so tests need not
    /// change the process's environment.
    pub(super) fn reveal_with(
        &self,
        what: &str,
        env: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<String> {
        match self {
            Secret::Env(name) => match env(name) {
                Some(value) if !value.is_empty() => value.into_string().map_err(|_| {
                    Error::Config(format!(
                        "environment variable `{name}` (needed for {what}) is not valid UTF-8"
                    ))
                }),
                _ => Err(Error::Config(format!(
                    "environment variable `{name}` is not set (needed for {what})\n\
                     hint: export `{name}`, or use `{{ file = \"/path\" }}` or \
                     `{{ credential = \"name\" }}` in mapping.toml"
                ))),
            },
            Secret::File(path) => read_secret_file(path, what, None),
            Secret::Credential(name) => {
                let Some(dir) = env("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) else {
                    return Err(Error::Config(format!(
                        "credential `{name}` (needed for {what}) cannot be read: \
                         `CREDENTIALS_DIRECTORY` is not set\n\
                         hint: run under systemd with `LoadCredential={name}:/path/to/secret`, \
                         or use `{{ env = \"NAME\" }}` or `{{ file = \"/path\" }}` in mapping.toml"
                    )));
                };
                read_secret_file(&Path::new(&dir).join(name), what, Some(name))
            }
        }
    }
}

fn read_secret_file(path: &Path, what: &str, credential: Option<&str>) -> Result<String> {
    let origin = match credential {
        Some(name) => format!("credential `{name}` at `{}`", path.display()),
        None => format!("`{}`", path.display()),
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::Config(format!(
            "cannot read {origin} (needed for {what}): {e}\n\
             hint: check that the file exists and that this user may read it"
        ))
    })?;
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err(Error::Config(format!(
            "{origin} (needed for {what}) is empty"
        )));
    }
    Ok(value.to_owned())
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

const SECRET_FORMS: &str =
    "`{ env = \"NAME\" }`, `{ file = \"/path\" }` or `{ credential = \"name\" }`";

/// Starts the error for a secret written in the clear, which [`Config::parse`]
/// recognises so as not to quote the line.
pub(super) const BARE_SECRET: &str = "secrets are not written into mapping.toml";

struct SecretVisitor;

impl<'de> Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a secret reference: {SECRET_FORMS}")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<Secret, E> {
        // The value is not repeated: it may well be the secret itself.
        Err(E::custom(format!(
            "{BARE_SECRET}\n\
             hint: use {SECRET_FORMS}, so the key does not sit in a file others may read"
        )))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Secret, A::Error> {
        let mut secret = None;
        while let Some(key) = map.next_key::<String>()? {
            if secret.is_some() {
                return Err(de::Error::custom(format!(
                    "a secret has exactly one of `env`, `file` or `credential`; `{key}` is one too many"
                )));
            }
            let value: String = map.next_value()?;
            secret = Some(match key.as_str() {
                "env" if !value.is_empty() && !value.contains(['=', '\0']) => Secret::Env(value),
                "env" => {
                    return Err(de::Error::custom(format!(
                        "invalid environment variable name `{value}`"
                    )))
                }
                "file" if !value.is_empty() => Secret::File(value.into()),
                "file" => return Err(de::Error::custom("empty file name for a secret")),
                "credential"
                    if !value.is_empty()
                        && !value.contains(['/', '\0'])
                        && value != "."
                        && value != ".." =>
                {
                    Secret::Credential(value)
                }
                "credential" => {
                    return Err(de::Error::custom(format!(
                        "invalid credential name `{value}`\nhint: give the name used in \
                         systemd's `LoadCredential=NAME:/path`, without `/`"
                    )))
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown secret source `{other}`\nhint: use {SECRET_FORMS}"
                    )))
                }
            });
        }
        secret.ok_or_else(|| de::Error::custom(format!("empty secret; use {SECRET_FORMS}")))
    }
}

impl super::Config {
    /// The environment variables the configuration reads secrets from
    /// (`{ env = .. }` of every source, of `[server]` and of every
    /// `[[notify]]` route): `on_change` and a notification's `sendmail` get
    /// none of them.
    pub fn secret_env_vars(&self) -> std::collections::BTreeSet<String> {
        let api_keys = self.sources.values().flat_map(|s| s.kind.secrets());
        let tokens = [&self.server.webhook_token, &self.server.refresh_token]
            .into_iter()
            .flatten();
        let routes = self.notify.iter().flat_map(super::NotifyRoute::secrets);
        api_keys
            .chain(tokens)
            .chain(routes)
            .filter_map(|secret| match secret {
                Secret::Env(name) => Some(name.clone()),
                Secret::File(_) | Secret::Credential(_) => None,
            })
            .collect()
    }
}
