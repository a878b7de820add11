//! The drop policy file: the drop's name and schedule, its classes (latency budget and
//! ordered delivery paths) and the globs that give each asset its class.
//!
//! Every error names the file, the line and column, and the field, because the person
//! reading it is a publisher with a text editor open an hour before a drop.

use std::fmt;
use std::ops::Range;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::model::{ClassName, DropName, DropPath, PathKind};
use crate::time::UtcTime;

/// The longest latency budget accepted: one day.
pub const MAX_BUDGET_MS: u64 = 86_400_000;

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The drop itself.
    pub drop: DropInfo,
    /// Classes in file order.
    pub classes: Vec<Class>,
    rules: Vec<AssetRule>,
    default_class: Option<ClassName>,
    file: String,
}

/// The drop's identity and schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DropInfo {
    /// The drop's name.
    pub name: DropName,
    /// When the drop goes live.
    pub opens_at: UtcTime,
    /// When it closes.
    pub closes_at: UtcTime,
}

/// A named latency budget and the paths allowed to carry it, in preference order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Class {
    /// The class name.
    pub name: ClassName,
    /// Latency budget in milliseconds, at least 1.
    pub budget_ms: u64,
    /// Allowed paths, most preferred first, no repeats, at least one.
    pub paths: Vec<PathKind>,
    /// A live class: new assets of it appear in later versions, and a client following
    /// the drop polls `timestamp.json` this often (milliseconds).
    pub poll_ms: Option<u64>,
    /// Edges with a free slot also take pieces while the swarm carries the class (as a
    /// BitTorrent web seed does), not only what the swarm cannot bring by the deadline:
    /// sooner done, more bytes from the edges. Needs `p2p` first and `edge` among the
    /// paths.
    pub spare_edges: bool,
}

/// The shortest poll interval accepted: a tenth of a second.
pub const MIN_POLL_MS: u64 = 100;

impl Class {
    /// True when BitTorrent peers may carry this class (and so it gets a torrent).
    pub fn allows_p2p(&self) -> bool {
        self.paths.contains(&PathKind::P2p)
    }
}

#[derive(Debug, Clone)]
struct AssetRule {
    glob: String,
    matcher: GlobMatcher,
    class: ClassName,
}

/// A policy problem and where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{location}: {field}: {problem}")]
pub struct PolicyError {
    /// The policy file's name as the user gave it.
    pub file: String,
    /// Line and column, when the problem is at one place in the file.
    pub location: Location,
    /// The field (`class[2].paths`, `drop.closes_at`, …).
    pub field: String,
    /// What is wrong (boxed: errors travel far and should stay small).
    pub problem: Box<PolicyProblem>,
}

/// A 1-based line and column in the policy file, or nowhere in particular.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location(pub Option<(usize, usize)>);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some((line, column)) => write!(f, ":{line}:{column}"),
            None => Ok(()),
        }
    }
}

/// What can be wrong with a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyProblem {
    /// Not valid TOML, or the wrong shape (missing or unknown field, wrong type).
    #[error("{0}")]
    Syntax(String),
    /// An asset rule or `default_class` names a class that is not defined.
    #[error("unknown class {name:?} (defined: {defined})")]
    UnknownClass {
        /// The class named.
        name: String,
        /// The classes that exist, comma-separated.
        defined: String,
    },
    /// A class lists no paths.
    #[error("a class needs at least one path (p2p, edge, origin)")]
    EmptyPaths,
    /// A class lists a path that does not exist.
    #[error("unknown path {0:?} (expected one of p2p, edge, origin)")]
    UnknownPath(String),
    /// A class lists the same path twice.
    #[error("path {0:?} is listed twice")]
    DuplicatePath(String),
    /// A budget of zero milliseconds.
    #[error("budget_ms must be at least 1")]
    ZeroBudget,
    /// A budget longer than a day.
    #[error("budget_ms {0} is more than a day ({MAX_BUDGET_MS})")]
    BudgetTooLarge(u64),
    /// A poll interval outside 100 ms to a day.
    #[error("poll_ms {0} is outside {MIN_POLL_MS}..={MAX_BUDGET_MS}")]
    PollOutOfRange(u64),
    /// `spare_edges` on a class whose paths do not start with `p2p` or lack `edge`.
    #[error("spare_edges needs paths that start with \"p2p\" and include \"edge\"")]
    SpareEdgesWithoutSwarmAndEdge,
    /// Two classes with one name.
    #[error("class {name:?} is already defined on line {first_line}")]
    DuplicateClass {
        /// The repeated name.
        name: String,
        /// Where it was first defined.
        first_line: usize,
    },
    /// The drop closes before (or when) it opens.
    #[error("closes_at {closes_at} is not after opens_at {opens_at}")]
    ClosesBeforeOpens {
        /// Opening time.
        opens_at: String,
        /// Closing time.
        closes_at: String,
    },
    /// A bad timestamp, name or glob.
    #[error("{0}")]
    Invalid(String),
    /// No classes at all.
    #[error("the policy defines no [[class]]")]
    NoClasses,
    /// An asset that no `[[assets]]` glob matches while no `default_class` is set.
    #[error("asset {0:?} matches no [[assets]] glob and drop.default_class is not set")]
    UnmatchedAsset(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    drop: RawDrop,
    #[serde(default, rename = "class")]
    classes: Vec<Spanned<RawClass>>,
    #[serde(default)]
    assets: Vec<Spanned<RawAssetRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDrop {
    name: Spanned<String>,
    opens_at: Spanned<String>,
    closes_at: Spanned<String>,
    #[serde(default)]
    default_class: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClass {
    name: Spanned<String>,
    budget_ms: Spanned<u64>,
    paths: Spanned<Vec<Spanned<String>>>,
    poll_ms: Option<Spanned<u64>>,
    #[serde(default)]
    spare_edges: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssetRule {
    glob: Spanned<String>,
    class: Spanned<String>,
}

struct Source<'a> {
    text: &'a str,
    file: &'a str,
}

impl Source<'_> {
    fn location(&self, span: Range<usize>) -> Location {
        let offset = span.start.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        Location(Some((line, column)))
    }

    fn error(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        problem: PolicyProblem,
    ) -> PolicyError {
        PolicyError {
            file: self.file.to_owned(),
            location: self.location(span),
            field: field.into(),
            problem: Box::new(problem),
        }
    }
}

impl Policy {
    /// Parses and validates a policy. `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, PolicyError> {
        let source = Source { text, file };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let location = e
                .span()
                .map_or(Location(None), |span| source.location(span));
            PolicyError {
                file: file.to_owned(),
                location,
                field: "toml".to_owned(),
                problem: Box::new(PolicyProblem::Syntax(e.message().trim().to_owned())),
            }
        })?;

        let drop = validate_drop(&source, &raw.drop)?;
        if raw.classes.is_empty() {
            return Err(PolicyError {
                file: file.to_owned(),
                location: Location(None),
                field: "class".to_owned(),
                problem: Box::new(PolicyProblem::NoClasses),
            });
        }
        let mut classes: Vec<(Class, usize)> = Vec::new();
        for (index, spanned) in raw.classes.iter().enumerate() {
            let class = validate_class(&source, index, spanned.get_ref())?;
            let line = source.location(spanned.span()).0.map_or(0, |(l, _)| l);
            if let Some((_, first_line)) = classes.iter().find(|(c, _)| c.name == class.name) {
                let raw_name = &spanned.get_ref().name;
                return Err(source.error(
                    raw_name.span(),
                    format!("class[{index}].name"),
                    PolicyProblem::DuplicateClass {
                        name: class.name.to_string(),
                        first_line: *first_line,
                    },
                ));
            }
            classes.push((class, line));
        }
        let classes: Vec<Class> = classes.into_iter().map(|(c, _)| c).collect();
        let defined = classes
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let known_class =
            |name: &Spanned<String>, field: String| -> Result<ClassName, PolicyError> {
                classes
                    .iter()
                    .find(|c| c.name.as_str() == name.get_ref())
                    .map(|c| c.name.clone())
                    .ok_or_else(|| {
                        source.error(
                            name.span(),
                            field,
                            PolicyProblem::UnknownClass {
                                name: name.get_ref().clone(),
                                defined: defined.clone(),
                            },
                        )
                    })
            };

        let default_class = raw
            .drop
            .default_class
            .as_ref()
            .map(|name| known_class(name, "drop.default_class".to_owned()))
            .transpose()?;

        let mut rules = Vec::new();
        for (index, spanned) in raw.assets.iter().enumerate() {
            let rule = spanned.get_ref();
            let class = known_class(&rule.class, format!("assets[{index}].class"))?;
            let glob = rule.glob.get_ref();
            let matcher = GlobBuilder::new(glob)
                .literal_separator(true)
                .build()
                .map_err(|e| {
                    source.error(
                        rule.glob.span(),
                        format!("assets[{index}].glob"),
                        PolicyProblem::Invalid(format!("bad glob {glob:?}: {}", e.kind())),
                    )
                })?
                .compile_matcher();
            rules.push(AssetRule {
                glob: glob.clone(),
                matcher,
                class,
            });
        }

        Ok(Policy {
            drop,
            classes,
            rules,
            default_class,
            file: file.to_owned(),
        })
    }

    /// The class of an asset: the first glob that matches wins, then `default_class`.
    pub fn class_for(&self, path: &DropPath) -> Result<&Class, PolicyError> {
        let name = self
            .rules
            .iter()
            .find(|rule| rule.matcher.is_match(path.as_str()))
            .map(|rule| &rule.class)
            .or(self.default_class.as_ref())
            .ok_or_else(|| PolicyError {
                file: self.file.clone(),
                location: Location(None),
                field: "assets".to_owned(),
                problem: Box::new(PolicyProblem::UnmatchedAsset(path.to_string())),
            })?;
        // Rules only hold names that were checked against the classes.
        self.class(name).ok_or_else(|| PolicyError {
            file: self.file.clone(),
            location: Location(None),
            field: "assets".to_owned(),
            problem: Box::new(PolicyProblem::UnknownClass {
                name: name.to_string(),
                defined: String::new(),
            }),
        })
    }

    /// The class with this name.
    pub fn class(&self, name: &ClassName) -> Option<&Class> {
        self.classes.iter().find(|c| &c.name == name)
    }

    /// The asset globs with their classes, in order.
    pub fn asset_rules(&self) -> impl Iterator<Item = (&str, &ClassName)> {
        self.rules.iter().map(|r| (r.glob.as_str(), &r.class))
    }
}

fn validate_drop(source: &Source<'_>, raw: &RawDrop) -> Result<DropInfo, PolicyError> {
    let name = DropName::new(raw.name.get_ref()).map_err(|e| {
        source.error(
            raw.name.span(),
            "drop.name",
            PolicyProblem::Invalid(e.to_string()),
        )
    })?;
    let time = |field: &Spanned<String>, label: &str| {
        UtcTime::parse(field.get_ref())
            .map_err(|e| source.error(field.span(), label, PolicyProblem::Invalid(e.to_string())))
    };
    let opens_at = time(&raw.opens_at, "drop.opens_at")?;
    let closes_at = time(&raw.closes_at, "drop.closes_at")?;
    if closes_at <= opens_at {
        return Err(source.error(
            raw.closes_at.span(),
            "drop.closes_at",
            PolicyProblem::ClosesBeforeOpens {
                opens_at: opens_at.to_string(),
                closes_at: closes_at.to_string(),
            },
        ));
    }
    Ok(DropInfo {
        name,
        opens_at,
        closes_at,
    })
}

fn validate_class(source: &Source<'_>, index: usize, raw: &RawClass) -> Result<Class, PolicyError> {
    let name = ClassName::new(raw.name.get_ref()).map_err(|e| {
        source.error(
            raw.name.span(),
            format!("class[{index}].name"),
            PolicyProblem::Invalid(e.to_string()),
        )
    })?;
    let budget_ms = *raw.budget_ms.get_ref();
    let budget_field = format!("class[{index}].budget_ms");
    if budget_ms == 0 {
        return Err(source.error(
            raw.budget_ms.span(),
            budget_field,
            PolicyProblem::ZeroBudget,
        ));
    }
    if budget_ms > MAX_BUDGET_MS {
        return Err(source.error(
            raw.budget_ms.span(),
            budget_field,
            PolicyProblem::BudgetTooLarge(budget_ms),
        ));
    }
    let paths_field = format!("class[{index}].paths");
    if raw.paths.get_ref().is_empty() {
        return Err(source.error(raw.paths.span(), paths_field, PolicyProblem::EmptyPaths));
    }
    let mut paths = Vec::new();
    for entry in raw.paths.get_ref() {
        let kind: PathKind = entry.get_ref().parse().map_err(|_| {
            source.error(
                entry.span(),
                &paths_field,
                PolicyProblem::UnknownPath(entry.get_ref().clone()),
            )
        })?;
        if paths.contains(&kind) {
            return Err(source.error(
                entry.span(),
                &paths_field,
                PolicyProblem::DuplicatePath(kind.to_string()),
            ));
        }
        paths.push(kind);
    }
    let poll_ms = match &raw.poll_ms {
        Some(poll) if !(MIN_POLL_MS..=MAX_BUDGET_MS).contains(poll.get_ref()) => {
            return Err(source.error(
                poll.span(),
                format!("class[{index}].poll_ms"),
                PolicyProblem::PollOutOfRange(*poll.get_ref()),
            ));
        }
        Some(poll) => Some(*poll.get_ref()),
        None => None,
    };
    let spare_edges = match &raw.spare_edges {
        Some(spare) if *spare.get_ref() => {
            if paths.first() != Some(&PathKind::P2p) || !paths.contains(&PathKind::Edge) {
                return Err(source.error(
                    spare.span(),
                    format!("class[{index}].spare_edges"),
                    PolicyProblem::SpareEdgesWithoutSwarmAndEdge,
                ));
            }
            true
        }
        _ => false,
    };
    Ok(Class {
        name,
        budget_ms,
        paths,
        poll_ms,
        spare_edges,
    })
}

#[cfg(test)]
mod tests;
