//! Build provenance for a pack: an in-toto Statement v1 whose subjects are the drop's
//! assets and whose predicate is SLSA Provenance v1, naming the policy and every input
//! by digest. Anyone can check which inputs, under which policy, made a release.

use serde::Serialize;
use serde_json::json;

use crate::model::percent_encode;
use crate::time::UtcTime;

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The SLSA provenance predicate type.
pub const SLSA_PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// Our build type.
pub const BUILD_TYPE: &str = "urn:swarmdrop:pack:v1";

/// One subject or input: a name and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Digested {
    /// Drop path or file name.
    pub name: String,
    /// Hex SHA-256.
    pub sha256: String,
}

/// What went into one pack.
#[derive(Debug, Clone)]
pub struct PackProvenance<'a> {
    /// The drop's name.
    pub drop: &'a str,
    /// The targets version this pack produced.
    pub version: u64,
    /// The policy file, by name and digest.
    pub policy: Digested,
    /// Every asset (subject and input at once: pack publishes its inputs verbatim).
    pub assets: &'a [Digested],
    /// Tracker URLs given.
    pub trackers: &'a [String],
    /// Webseed base URLs given.
    pub webseeds: &'a [String],
    /// The builder's version.
    pub builder_version: &'a str,
    /// When the pack started.
    pub started_on: UtcTime,
    /// When it finished.
    pub finished_on: UtcTime,
}

impl PackProvenance<'_> {
    /// The statement as JSON bytes (the DSSE payload).
    pub fn statement(&self) -> Vec<u8> {
        let subject: Vec<_> = self
            .assets
            .iter()
            .map(|a| json!({ "name": a.name, "digest": { "sha256": a.sha256 } }))
            .collect();
        let mut dependencies = vec![json!({
            "uri": format!("file:{}", percent_encode(&self.policy.name, b"/")),
            "name": "policy",
            "digest": { "sha256": self.policy.sha256 },
        })];
        dependencies.extend(self.assets.iter().map(|a| {
            json!({ "uri": format!("file:{}", percent_encode(&a.name, b"/")), "name": a.name, "digest": { "sha256": a.sha256 } })
        }));
        let statement = json!({
            "_type": STATEMENT_TYPE,
            "subject": subject,
            "predicateType": SLSA_PREDICATE_TYPE,
            "predicate": {
                "buildDefinition": {
                    "buildType": BUILD_TYPE,
                    "externalParameters": {
                        "drop": self.drop,
                        "policy": self.policy.name,
                        "trackers": self.trackers,
                        "webseeds": self.webseeds,
                    },
                    "internalParameters": { "targetsVersion": self.version },
                    "resolvedDependencies": dependencies,
                },
                "runDetails": {
                    "builder": { "id": format!("urn:swarmdrop:builder:swarmdrop-pack@{}", self.builder_version) },
                    "metadata": {
                        "invocationId": format!("{}/v{}", self.drop, self.version),
                        "startedOn": self.started_on.to_string(),
                        "finishedOn": self.finished_on.to_string(),
                    },
                },
            },
        });
        // Sorted keys and no whitespace: the same inputs give the same bytes.
        serde_json::to_vec(&statement).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_lists_subjects_and_materials() {
        let assets = [Digested {
            name: "frames/a.png".into(),
            sha256: "ab".repeat(32),
        }];
        let t = UtcTime::from_unix(1_800_000_000).unwrap();
        let bytes = PackProvenance {
            drop: "genesis",
            version: 3,
            policy: Digested {
                name: "drop.toml".into(),
                sha256: "cd".repeat(32),
            },
            assets: &assets,
            trackers: &[],
            webseeds: &[],
            builder_version: "0.1.0",
            started_on: t,
            finished_on: t,
        }
        .statement();
        let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(value["_type"], STATEMENT_TYPE);
        assert_eq!(value["subject"][0]["digest"]["sha256"], "ab".repeat(32));
        let deps = value["predicate"]["buildDefinition"]["resolvedDependencies"]
            .as_array()
            .unwrap();
        assert_eq!(deps.len(), 2);
        assert_eq!(
            value["predicate"]["runDetails"]["metadata"]["startedOn"],
            "2027-01-15T08:00:00Z"
        );
    }
}
