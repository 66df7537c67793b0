//! Baseline gradient estimators of the paper's comparisons, as dfdx ops.
