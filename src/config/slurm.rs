//! `kind = "slurm"`: the keys of a Slurm source in `mapping.toml`, checked
//! while the toml crate still knows where they are, and the validated
//! [`SlurmConfig`] that `source::slurm` reads the controller with.
//!
//! ```toml
//! [sources.archer2-slurm]
//! kind = "slurm"
//! scontrol = "/usr/bin/scontrol"      # default: `scontrol` on PATH
//! cluster = "archer2"                 # passed as `-M archer2`; default: none
//! reservations = "maint"              # or "all": every reservation, not only MAINT
//! drain = "under_maintenance"         # or "partial_outage": DRAIN and INACTIVE partitions
//! state = { DOWN = "major_outage" }   # any partition state -> component status
//! request_timeout = "20s"             # default: `[settings] request_timeout`
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use jiff::SignedDuration;
use toml::Spanned;

use super::raw::Located;
use super::{parse_duration, SourceField};
use crate::model::ComponentStatus;

/// `scontrol` when the source does not say.
pub const DEFAULT_SCONTROL: &str = "scontrol";

/// Which reservations become maintenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reservations {
    /// Only those with the `MAINT` flag (the default).
    #[default]
    Maint,
    /// Every reservation: a reserved node runs no other jobs either.
    All,
}

/// A validated `kind = "slurm"` source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmConfig {
    /// A bare name is looked up on `PATH`; a relative path with a `/` is
    /// relative to the configuration file.
    pub scontrol: PathBuf,
    /// Passed as `-M <cluster>`.
    pub cluster: Option<String>,
    pub reservations: Reservations,
    /// Partition state (upper case) -> component status, defaults included.
    /// A state not listed is `degraded_performance`: shown, never hidden.
    pub states: BTreeMap<String, ComponentStatus>,
    /// How long the `scontrol` runs of one fetch may take together; `None`:
    /// `[settings] request_timeout`.
    pub request_timeout: Option<SignedDuration>,
}

impl SlurmConfig {
    /// The keys `mapping init` writes back: those that differ from the
    /// defaults, and `scontrol` always, so the skeleton shows what runs.
    pub fn fields(&self) -> Vec<(&'static str, SourceField<'_>)> {
        let mut fields = vec![(
            "scontrol",
            SourceField::Text(self.scontrol.to_string_lossy()),
        )];
        if let Some(c) = &self.cluster {
            fields.push(("cluster", SourceField::Text(Cow::Borrowed(c))));
        }
        if self.reservations == Reservations::All {
            fields.push(("reservations", SourceField::Text(Cow::Borrowed("all"))));
        }
        fields
    }

    /// The status of a partition whose states are `states` (JSON output can
    /// list several): the worst of them, `degraded_performance` for a state
    /// this table does not know.
    pub fn status_of<'a>(&self, states: impl IntoIterator<Item = &'a str>) -> ComponentStatus {
        states
            .into_iter()
            .map(|s| {
                self.states
                    .get(&s.trim().to_ascii_uppercase())
                    .copied()
                    .unwrap_or(ComponentStatus::DegradedPerformance)
            })
            .max()
            .unwrap_or(ComponentStatus::DegradedPerformance)
    }
}

/// The Slurm keys of a `[sources.NAME]` table, as read.
#[derive(Default)]
pub(super) struct RawSlurm {
    pub scontrol: Option<Spanned<String>>,
    pub cluster: Option<Spanned<String>>,
    pub reservations: Option<Spanned<String>>,
    pub drain: Option<Spanned<String>>,
    pub state: Option<Spanned<BTreeMap<String, String>>>,
    pub request_timeout: Option<Spanned<String>>,
}

impl RawSlurm {
    /// The first Slurm key given, for a source of another kind to refuse.
    pub fn first_given(&self) -> Option<(&'static str, Range<usize>)> {
        [
            ("scontrol", self.scontrol.as_ref().map(Spanned::span)),
            ("cluster", self.cluster.as_ref().map(Spanned::span)),
            (
                "reservations",
                self.reservations.as_ref().map(Spanned::span),
            ),
            ("drain", self.drain.as_ref().map(Spanned::span)),
            ("state", self.state.as_ref().map(Spanned::span)),
            (
                "request_timeout",
                self.request_timeout.as_ref().map(Spanned::span),
            ),
        ]
        .into_iter()
        .find_map(|(key, span)| span.map(|s| (key, s)))
    }

    /// Checks the values; an error carries the span of the offending value.
    pub fn validate(self, name: &str) -> Result<SlurmConfig, Located> {
        let bad = |span: Range<usize>, message: String| Err((Some(span), message));

        let scontrol = match self.scontrol {
            None => PathBuf::from(DEFAULT_SCONTROL),
            Some(s) => {
                let span = s.span();
                let s = s.into_inner();
                if s.trim().is_empty() || s.contains('\0') {
                    return bad(
                        span,
                        format!(
                            "source `{name}`: `scontrol` must name a program\n\
                             hint: leave it out to run `scontrol` from PATH, or give a path \
                             such as `/usr/bin/scontrol`"
                        ),
                    );
                }
                PathBuf::from(s)
            }
        };

        let cluster = match self.cluster {
            None => None,
            Some(c) => {
                let span = c.span();
                let c = c.into_inner();
                let ok = !c.is_empty()
                    && c.len() <= 64
                    && !c.starts_with('-')
                    && c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if !ok {
                    return bad(
                        span,
                        format!(
                            "source `{name}`: `{}` is not a Slurm cluster name\n\
                             hint: use the `ClusterName` of the cluster's slurm.conf \
                             (letters, digits, `_` and `-`, not starting with `-`)",
                            c.escape_debug()
                        ),
                    );
                }
                Some(c)
            }
        };

        let reservations = match self.reservations {
            None => Reservations::Maint,
            Some(r) => match r.get_ref().as_str() {
                "maint" => Reservations::Maint,
                "all" => Reservations::All,
                other => {
                    return bad(
                        r.span(),
                        format!(
                            "source `{name}`: `reservations = \"{}\"` is not a choice\n\
                             hint: use `\"maint\"` (reservations with the MAINT flag, the \
                             default) or `\"all\"` (every reservation)",
                            other.escape_debug()
                        ),
                    )
                }
            },
        };

        let drain = match self.drain {
            None => ComponentStatus::UnderMaintenance,
            Some(d) => match d.get_ref().as_str() {
                "under_maintenance" => ComponentStatus::UnderMaintenance,
                "partial_outage" => ComponentStatus::PartialOutage,
                other => {
                    return bad(
                        d.span(),
                        format!(
                            "source `{name}`: `drain = \"{}\"` is not a choice\n\
                             hint: use `\"under_maintenance\"` (the default) or \
                             `\"partial_outage\"`",
                            other.escape_debug()
                        ),
                    )
                }
            },
        };
        let mut states: BTreeMap<String, ComponentStatus> = [
            ("UP", ComponentStatus::Operational),
            ("DOWN", ComponentStatus::MajorOutage),
            ("DRAIN", drain),
            ("INACTIVE", drain),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(map) = self.state {
            let span = map.span();
            for (state, status) in map.into_inner() {
                let key = state.trim().to_ascii_uppercase();
                if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return bad(
                        span,
                        format!(
                            "source `{name}`: `{}` in `state` is not a partition state\n\
                             hint: Slurm's partition states are `UP`, `DOWN`, `DRAIN` and \
                             `INACTIVE`",
                            state.escape_debug()
                        ),
                    );
                }
                let Some(value) = parse_status(&status) else {
                    return bad(
                        span,
                        format!(
                            "source `{name}`: `state.{key} = \"{}\"` is not a component status\n\
                             hint: use `operational`, `degraded_performance`, `partial_outage`, \
                             `major_outage` or `under_maintenance`",
                            status.escape_debug()
                        ),
                    );
                };
                states.insert(key, value);
            }
        }

        let request_timeout = match self.request_timeout {
            None => None,
            Some(t) => {
                let span = t.span();
                match parse_duration(t.get_ref()) {
                    Ok(d) if d.is_zero() => {
                        return bad(
                            span,
                            format!(
                                "source `{name}`: `request_timeout` is zero; scontrol needs \
                                 some time\nhint: e.g. `request_timeout = \"20s\"`"
                            ),
                        )
                    }
                    Ok(d) => Some(d),
                    Err(e) => return bad(span, format!("source `{name}`: {e}")),
                }
            }
        };

        Ok(SlurmConfig {
            scontrol,
            cluster,
            reservations,
            states,
            request_timeout,
        })
    }
}

fn parse_status(s: &str) -> Option<ComponentStatus> {
    Some(match s {
        "operational" => ComponentStatus::Operational,
        "degraded_performance" => ComponentStatus::DegradedPerformance,
        "partial_outage" => ComponentStatus::PartialOutage,
        "major_outage" => ComponentStatus::MajorOutage,
        "under_maintenance" => ComponentStatus::UnderMaintenance,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Config, SourceKind};

    fn parse(source: &str) -> crate::Result<Config> {
        let text = format!("[sources.slurm]\nkind = \"slurm\"\n{source}");
        Config::parse(&text, Path::new("/etc/statusmotd/mapping.toml"))
    }

    fn slurm(source: &str) -> SlurmConfig {
        match parse(source).unwrap().sources["slurm"].kind.clone() {
            SourceKind::Slurm(s) => s,
            other => panic!("wrong kind {other:?}"),
        }
    }

    fn err(source: &str) -> String {
        let e = parse(source).unwrap_err();
        assert_eq!(e.exit_code(), 3, "{e}");
        e.to_string()
    }

    #[test]
    fn defaults_read_maint_reservations_with_the_scontrol_on_path() {
        let s = slurm("");
        assert_eq!(s.scontrol, PathBuf::from("scontrol"));
        assert_eq!(s.cluster, None);
        assert_eq!(s.reservations, Reservations::Maint);
        assert_eq!(s.request_timeout, None);
        assert_eq!(s.status_of(["UP"]), ComponentStatus::Operational);
        assert_eq!(s.status_of(["down"]), ComponentStatus::MajorOutage);
        assert_eq!(s.status_of(["DRAIN"]), ComponentStatus::UnderMaintenance);
        assert_eq!(s.status_of(["INACTIVE"]), ComponentStatus::UnderMaintenance);
        assert_eq!(
            s.status_of(["SOMETHING_NEW"]),
            ComponentStatus::DegradedPerformance,
            "an unknown state is shown, not hidden"
        );
        assert_eq!(s.status_of(["UP", "DOWN"]), ComponentStatus::MajorOutage);
    }

    #[test]
    fn every_key_is_read_and_relative_paths_join_the_config_dir() {
        let s = slurm(
            "scontrol = \"bin/scontrol\"\ncluster = \"archer2\"\nreservations = \"all\"\n\
             drain = \"partial_outage\"\nstate = { down = \"partial_outage\", Maint = \"under_maintenance\" }\n\
             request_timeout = \"20s\"\n",
        );
        assert_eq!(s.scontrol, PathBuf::from("/etc/statusmotd/bin/scontrol"));
        assert_eq!(s.cluster.as_deref(), Some("archer2"));
        assert_eq!(s.reservations, Reservations::All);
        assert_eq!(s.status_of(["DRAIN"]), ComponentStatus::PartialOutage);
        assert_eq!(s.status_of(["INACTIVE"]), ComponentStatus::PartialOutage);
        assert_eq!(s.status_of(["DOWN"]), ComponentStatus::PartialOutage);
        assert_eq!(s.status_of(["MAINT"]), ComponentStatus::UnderMaintenance);
        assert_eq!(s.request_timeout, Some(SignedDuration::from_secs(20)));
        // A bare name stays a name, for PATH.
        assert_eq!(
            slurm("scontrol = \"scontrol\"\n").scontrol,
            PathBuf::from("scontrol")
        );
    }

    #[test]
    fn bad_values_name_the_key_the_line_and_the_choices() {
        let e = err("reservations = \"some\"\n");
        assert!(e.contains("line 3"), "{e}");
        assert!(
            e.contains("`reservations = \"some\"` is not a choice"),
            "{e}"
        );
        assert!(e.contains("hint: use `\"maint\"`"), "{e}");

        let e = err("drain = \"major_outage\"\n");
        assert!(
            e.contains("`drain = \"major_outage\"` is not a choice"),
            "{e}"
        );

        let e = err("state = { UP = \"fine\" }\n");
        assert!(
            e.contains("`state.UP = \"fine\"` is not a component status"),
            "{e}"
        );

        let e = err("cluster = \"-x\"\n");
        assert!(e.contains("`-x` is not a Slurm cluster name"), "{e}");
        let e = err("cluster = \"a b\"\n");
        assert!(e.contains("not a Slurm cluster name"), "{e}");

        let e = err("request_timeout = \"0s\"\n");
        assert!(e.contains("`request_timeout` is zero"), "{e}");
        let e = err("request_timeout = \"soon\"\n");
        assert!(e.contains("invalid duration `soon`"), "{e}");

        let e = err("scontrol = \"\"\n");
        assert!(e.contains("`scontrol` must name a program"), "{e}");
    }

    #[test]
    fn keys_of_other_kinds_are_refused_both_ways() {
        let e = err("url = \"https://status.example.org\"\n");
        assert!(e.contains("`url` is not a key of kind `slurm`"), "{e}");
        assert!(e.contains("kind `slurm` takes `scontrol`"), "{e}");
        let e = Config::parse(
            "[sources.gh]\nkind = \"statuspage-public\"\nurl = \"https://x.example\"\n\
             cluster = \"archer2\"\n",
            Path::new("/etc/statusmotd/mapping.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("`cluster` is not a key of kind `statuspage-public`"),
            "{e}"
        );
    }
}
