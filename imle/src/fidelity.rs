//! Estimator fidelity against exact gradients.
