//! Explanations: why a candidate got its intent vector and score.

/// One chain of the walk, root first.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainExplanation {
    pub nodes: Vec<u32>,
    pub phrases: Vec<String>,
    /// Normalised tree weight `w̃` of each node.
    pub weights: Vec<f64>,
    /// Cosine similarity of each node to the candidate.
    pub similarities: Vec<f64>,
    /// Attention (mean over heads) on each node's slot.
    pub attention: Vec<f32>,
    /// The chain's walk score (mean node score).
    pub score: f64,
}

/// One evidence event kept for the candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceExplanation {
    /// Index of the event in the user's history.
    pub event: u32,
    pub item: u32,
    pub behaviour: u32,
    pub timestamp: f64,
    /// Normalised decayed weight `c_e / W`.
    pub weight: f64,
    pub similarity: f64,
    /// Pruning score `ln(weight) + evidence_alpha * similarity`.
    pub score: f64,
    pub attention: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub score: f32,
    pub intent_vector: Vec<f32>,
    pub chains: Vec<ChainExplanation>,
    pub evidence: Vec<EvidenceExplanation>,
    /// Attention on the null slot ("no intent applies").
    pub null_attention: f32,
}
