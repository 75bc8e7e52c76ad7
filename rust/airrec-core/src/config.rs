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
        if self.behaviour_weights.is_empty() {
            return err("behaviour_weights must name at least one behaviour type".into());
        }
        if let Some(w) = self.behaviour_weights.iter().find(|w| !w.is_finite() || **w <= 0.0 || **w > MAX_BEHAVIOUR_WEIGHT) {
            return err(format!("behaviour_weights must be in (0, {MAX_BEHAVIOUR_WEIGHT:e}], got {w}"));
        }
        if !self.decay_lambda.is_finite() || self.decay_lambda < 0.0 {
            return err(format!("decay_lambda must be finite and >= 0, got {}", self.decay_lambda));
        }
        for (name, v) in [("beam_width", self.beam_width), ("max_chains", self.max_chains)] {
            if v == 0 {
                return err(format!("{name} must be >= 1"));
            }
        }
        if self.max_chain_depth == 0 || self.max_chain_depth > MAX_CHAIN_DEPTH_LIMIT {
            return err(format!(
                "max_chain_depth must be in 1..={MAX_CHAIN_DEPTH_LIMIT}, got {}",
                self.max_chain_depth
            ));
        }
        for (name, v) in [("walk_alpha", self.walk_alpha), ("evidence_alpha", self.evidence_alpha)] {
            if !v.is_finite() {
                return err(format!("{name} must be finite, got {v}"));
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
        let config: EngineConfig =
            serde_json::from_value(merged).map_err(|e| Error::Config(e.to_string()))?;
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
}
