//! Online-path parameters. Defaults are documented in `docs/online-path.md` §6; a bundle stores
//! its own values and every engine may override any of them.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The longest chain the engine walks; chains live in fixed arrays of this size.
pub const MAX_CHAIN_DEPTH_LIMIT: usize = 16;

/// Largest behaviour weight a bundle or an override may set: node masses sum behaviour weights
/// over a user's history, so huge ones overflow to infinity and every normalised weight
/// becomes NaN (`behaviour_weights=[1e308]` did, silently).
pub const MAX_BEHAVIOUR_WEIGHT: f64 = 1e6;

/// Upper bounds of the integer settings. Every one sizes per-request work or scratch arrays
/// (`max_chains * max_chain_depth + max_evidence` slots per candidate), and the bundle's
/// config is data anyone can edit: `max_chains = 2^31` aborted on allocation and `2^62`
/// wrapped the slot width. These are far above any useful value (defaults 2–16).
pub const MAX_BEAM_WIDTH: usize = 256;
pub const MAX_CHAINS: usize = 64;
pub const MAX_NODE_EVIDENCE_CAP: usize = 1024;
pub const MAX_EVIDENCE: usize = 256;
pub const MAX_COLD_START_PATHS: usize = 64;
/// Behaviour types a config may name (behaviour ids index `behaviour_weights`).
pub const MAX_BEHAVIOURS: usize = 256;
/// Bound on `|walk_alpha|`, `|evidence_alpha|` and `decay_lambda`: they multiply logs and
/// times in scores, so huge ones turn every weight into 0 or inf.
pub const MAX_COEFFICIENT: f64 = 1e3;

/// Every bounded setting with its inclusive range, for documentation and for bindings that
/// check values before they reach the engine (Python reads this instead of repeating it).
pub fn limits() -> Vec<(&'static str, f64, f64)> {
    vec![
        ("behaviour_weights", f64::MIN_POSITIVE, MAX_BEHAVIOUR_WEIGHT),
        ("decay_lambda", 0.0, MAX_COEFFICIENT),
        ("beam_width", 1.0, MAX_BEAM_WIDTH as f64),
        ("max_chains", 1.0, MAX_CHAINS as f64),
        ("max_chain_depth", 1.0, MAX_CHAIN_DEPTH_LIMIT as f64),
        ("walk_alpha", -MAX_COEFFICIENT, MAX_COEFFICIENT),
        ("node_evidence_cap", 0.0, MAX_NODE_EVIDENCE_CAP as f64),
        ("max_evidence", 0.0, MAX_EVIDENCE as f64),
        ("evidence_alpha", -MAX_COEFFICIENT, MAX_COEFFICIENT),
        ("evidence_max_age", 0.0, f64::INFINITY),
        ("cold_start_paths", 0.0, MAX_COLD_START_PATHS as f64),
    ]
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Weight of each behaviour type id (e.g. click, cart, order).
    pub behaviour_weights: Vec<f64>,
    /// Exponential time decay per time unit.
    pub decay_lambda: f64,
    /// Partial chains kept per depth of the beam walk.
    pub beam_width: usize,
    /// Chains per candidate.
    pub max_chains: usize,
    /// Longest chain (nodes from the root).
    pub max_chain_depth: usize,
    /// Weight of `ln(normalised node weight)` in the walk score.
    pub walk_alpha: f64,
    /// Evidence events kept per tree node.
    pub node_evidence_cap: usize,
    /// Evidence events kept per candidate.
    pub max_evidence: usize,
    /// Weight of the candidate similarity in evidence pruning.
    pub evidence_alpha: f64,
    /// Evidence older than this (in time units, before the latest event) is dropped.
    pub evidence_max_age: Option<f64>,
    /// Nearest trie leaves given to an item with no cached paths (0 disables cold start).
    pub cold_start_paths: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            behaviour_weights: vec![1.0],
            decay_lambda: 0.05,
            beam_width: 4,
            max_chains: 2,
            max_chain_depth: 4,
            walk_alpha: 0.1,
            node_evidence_cap: 16,
            max_evidence: 8,
            evidence_alpha: 1.0,
            evidence_max_age: None,
            cold_start_paths: 2,
        }
    }
}

impl EngineConfig {
    /// Checks every value's range; the engine refuses to start with an invalid config.
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| Err(Error::Config(m));
        if self.behaviour_weights.is_empty() || self.behaviour_weights.len() > MAX_BEHAVIOURS {
            return err(format!("behaviour_weights must name 1..={MAX_BEHAVIOURS} behaviour types, got {}", self.behaviour_weights.len()));
        }
        if let Some(w) = self.behaviour_weights.iter().find(|w| !w.is_finite() || **w <= 0.0 || **w > MAX_BEHAVIOUR_WEIGHT) {
            return err(format!("behaviour_weights must be in (0, {MAX_BEHAVIOUR_WEIGHT:e}], got {w}"));
        }
        let ints = [
            ("beam_width", self.beam_width, 1, MAX_BEAM_WIDTH),
            ("max_chains", self.max_chains, 1, MAX_CHAINS),
            ("max_chain_depth", self.max_chain_depth, 1, MAX_CHAIN_DEPTH_LIMIT),
            ("node_evidence_cap", self.node_evidence_cap, 0, MAX_NODE_EVIDENCE_CAP),
            ("max_evidence", self.max_evidence, 0, MAX_EVIDENCE),
            ("cold_start_paths", self.cold_start_paths, 0, MAX_COLD_START_PATHS),
        ];
        for (name, v, lo, hi) in ints {
            if !(lo..=hi).contains(&v) {
                return err(format!("{name} must be in {lo}..={hi}, got {v}"));
            }
        }
        let floats = [
            ("decay_lambda", self.decay_lambda, 0.0),
            ("walk_alpha", self.walk_alpha, -MAX_COEFFICIENT),
            ("evidence_alpha", self.evidence_alpha, -MAX_COEFFICIENT),
        ];
        for (name, v, lo) in floats {
            if !(lo..=MAX_COEFFICIENT).contains(&v) {
                return err(format!("{name} must be in [{lo}, {MAX_COEFFICIENT}], got {v}"));
            }
        }
        if let Some(age) = self.evidence_max_age {
            if age.is_nan() || age < 0.0 {
                return err(format!("evidence_max_age must be >= 0 or null, got {age}"));
            }
        }
        Ok(())
    }

    /// Applies a JSON object of overrides (unknown keys are an error, so typos are caught).
    pub fn with_overrides(&self, overrides: &serde_json::Value) -> Result<Self> {
        let mut merged = serde_json::to_value(self).map_err(|e| Error::Config(e.to_string()))?;
        let Some(obj) = overrides.as_object() else {
            return Err(Error::Config("overrides must be a JSON object".into()));
        };
        let target = merged.as_object_mut().expect("config serialises to an object");
        for (k, v) in obj {
            if !target.contains_key(k) {
                return Err(Error::Config(format!("unknown config key {k:?}")));
            }
            target.insert(k.clone(), v.clone());
        }
        let config: EngineConfig = serde_json::from_value(merged).map_err(|e| Error::Config(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    pub fn n_behaviours(&self) -> usize {
        self.behaviour_weights.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        EngineConfig::default().validate().unwrap();
    }

    #[test]
    fn overrides_apply_and_validate() {
        let base = EngineConfig::default();
        let c = base.with_overrides(&serde_json::json!({"beam_width": 8})).unwrap();
        assert_eq!(c.beam_width, 8);
        assert!(base.with_overrides(&serde_json::json!({"beam_width": 0})).is_err());
        assert!(base.with_overrides(&serde_json::json!({"beam_widht": 3})).is_err());
        assert!(base.with_overrides(&serde_json::json!({"behaviour_weights": [1.0, -2.0]})).is_err());
        // Finite but huge: node masses overflowed and every node weight became NaN, silently.
        assert!(base.with_overrides(&serde_json::json!({"behaviour_weights": [1e308]})).is_err());
        assert!(base.with_overrides(&serde_json::json!({"behaviour_weights": [1e6]})).is_ok());
        assert!(base.with_overrides(&serde_json::json!({"max_chain_depth": 17})).is_err());
    }

    #[test]
    fn every_integer_setting_is_bounded() {
        let base = EngineConfig::default();
        // 2^31 aborted on allocation and 2^62 wrapped the slot width before these bounds.
        for key in ["beam_width", "max_chains", "node_evidence_cap", "max_evidence", "cold_start_paths"] {
            for v in [1u64 << 31, 1u64 << 62] {
                let e = base.with_overrides(&serde_json::json!({ key: v })).unwrap_err();
                assert!(e.to_string().contains(key), "{key}={v}: {e}");
            }
        }
        assert!(base.with_overrides(&serde_json::json!({"max_chains": MAX_CHAINS})).is_ok());
        assert!(base.with_overrides(&serde_json::json!({"decay_lambda": 1e300})).is_err());
        assert!(base.with_overrides(&serde_json::json!({"walk_alpha": -1e4})).is_err());
        assert!(base.with_overrides(&serde_json::json!({"behaviour_weights": vec![1.0; 257]})).is_err());
        // `limits()` (what Python reads) and `validate()` agree: each bound is admitted and
        // the value just beyond it is refused.
        let defaults = serde_json::to_value(&base).unwrap();
        for (name, lo, hi) in limits() {
            if name == "behaviour_weights" || name == "evidence_max_age" {
                continue; // a list, and an open-ended optional: covered above
            }
            let cases: Vec<(serde_json::Value, bool)> = if defaults[name].is_u64() {
                let (lo, hi) = (lo as i64, hi as i64);
                vec![(lo.into(), true), (hi.into(), true), ((hi + 1).into(), false), ((lo - 1).into(), false)]
            } else {
                vec![(lo.into(), true), (hi.into(), true), ((hi * 1.001).into(), false), ((lo - 1.0).into(), false)]
            };
            for (v, ok) in cases {
                assert_eq!(base.with_overrides(&serde_json::json!({ name: v })).is_ok(), ok, "{name} = {v}");
            }
        }
        // Every limit admits the default.
        let defaults = serde_json::to_value(&base).unwrap();
        for (name, lo, hi) in limits() {
            let v = &defaults[name];
            let vals: Vec<f64> = match v {
                serde_json::Value::Array(a) => a.iter().map(|x| x.as_f64().unwrap()).collect(),
                serde_json::Value::Null => continue,
                x => vec![x.as_f64().unwrap()],
            };
            assert!(vals.iter().all(|x| (lo..=hi).contains(x)), "{name}: {v} outside {lo}..={hi}");
        }
    }
}
