//! Target distributions `q(z; θ')` of I-MLE (Sec. 3.1 and Sec. 4).
//!
//! Given θ and the upstream gradient `g = ∂L/∂z`, a target builds the parameters θ' of a
//! distribution that would give a lower loss:
//! * [`Target::Pid`] — perturbation-based implicit differentiation, Eq. 10:
//!   `θ' = α·θ − λ·g` (α = 1 by default);
//! * [`Target::Combinatorial`] — the combinatorial-optimisation target, Eq. 14:
//!   `θ'_i = θ_i` where `g_i = 0`, else `θ'_i = −g_i`;
//! * [`Target::Adaptive`] — PID with λ chosen per example as `β·‖θ‖/‖g‖`, where β is
//!   nudged after every backward pass so that the running fraction of non-zero gradient
//!   entries tracks a target (adaptive I-MLE, Minervini et al. 2023).
//!
//! * [`Target::Custom`] — any [`TargetDistribution`] of your own.
//!
//! Two-sided estimators use the target of `−g` as the second point (for PID: `θ + λ·g`).

use crate::error::{check_positive, Error, Result};
use std::sync::{Arc, Mutex};

/// A target distribution of your own: how θ' is built from θ and `g = ∂L/∂z`, one row
/// at a time, with an [`TargetDistribution::observe`] hook for adaptive targets.
///
/// ```
/// use imle::target::{Target, TargetDistribution};
/// // θ' = θ − λ·sign(g): a PID step that ignores the gradient's magnitude.
/// #[derive(Debug)]
/// struct SignStep(f32);
/// impl TargetDistribution for SignStep {
///     fn params(&self, theta: &[f32], g: &[f32], sign: f32, out: &mut [f32]) -> Option<f32> {
///         for ((o, t), g) in out.iter_mut().zip(theta).zip(g) {
///             *o = t - sign * self.0 * g.signum() * (*g != 0.0) as u8 as f32;
///         }
///         Some(self.0)
///     }
/// }
/// let target = Target::custom(SignStep(2.0));
/// let mut out = [0.0; 3];
/// assert_eq!(target.params(&[1.0, 1.0, 1.0], &[0.5, 0.0, -3.0], 1.0, &mut out), Some(2.0));
/// assert_eq!(out, [-1.0, 1.0, 3.0]);
/// ```
pub trait TargetDistribution: std::fmt::Debug + Send + Sync {
    /// Writes θ' for one row into `out` (the length of θ); `sign = 1` uses `g`,
    /// `sign = -1` uses `−g` (the second point of a two-sided estimate). Returns the λ
    /// used, by which the estimate is divided with `Imle::scale_by_lambda`, or `None`
    /// for no scaling.
    fn params(&self, theta: &[f32], g: &[f32], sign: f32, out: &mut [f32]) -> Option<f32>;

    /// Called after each backward pass with the estimated gradient (e.g. to adapt λ).
    fn observe(&self, _gradient: &[f32]) {}
}

/// How θ' is built from θ and `g = ∂L/∂z`.
#[derive(Debug, Clone)]
pub enum Target {
    /// Eq. 10: `θ' = α·θ − λ·g`.
    Pid {
        /// Step size λ > 0.
        lambda: f32,
        /// Scale α of θ (1 in the paper).
        alpha: f32,
    },
    /// Eq. 14: `θ'_i = θ_i` if `g_i = 0`, else `−g_i`.
    Combinatorial,
    /// PID with an adaptive λ (AIMLE); the state is shared by clones.
    Adaptive(Arc<AdaptiveLambda>),
    /// A target of your own; shared by clones.
    Custom(Arc<dyn TargetDistribution>),
}

impl Target {
    /// PID target (Eq. 10) with α = 1.
    pub fn pid(lambda: f32) -> Result<Self> {
        check_positive("lambda", lambda as f64)?;
        Ok(Target::Pid { lambda, alpha: 1.0 })
    }

    /// PID target (Eq. 10) with an explicit α.
    pub fn pid_with_alpha(lambda: f32, alpha: f32) -> Result<Self> {
        check_positive("lambda", lambda as f64)?;
        if !alpha.is_finite() {
            return Err(Error::InvalidParameter {
                name: "alpha",
                value: alpha as f64,
                reason: "must be finite",
            });
        }
        Ok(Target::Pid { lambda, alpha })
    }

    /// Adaptive PID target (AIMLE) with the given settings.
    pub fn adaptive(settings: AdaptiveLambda) -> Self {
        Target::Adaptive(Arc::new(settings))
    }

    /// A target of your own.
    pub fn custom(target: impl TargetDistribution + 'static) -> Self {
        Target::Custom(Arc::new(target))
    }

    /// The λ of PID or AIMLE for one example (row) `theta` with gradient `g`; `None` for
    /// [`Target::Combinatorial`], which has no λ, and for [`Target::Custom`] (its
    /// [`TargetDistribution::params`] returns it). For [`Target::Adaptive`], `None` if `g = 0`.
    pub fn lambda(&self, theta: &[f32], g: &[f32]) -> Option<f32> {
        match self {
            Target::Pid { lambda, .. } => Some(*lambda),
            Target::Combinatorial | Target::Custom(_) => None,
            Target::Adaptive(a) => a.lambda(theta, g),
        }
    }

    /// Writes θ' for one row into `out`; `sign = 1` uses `g`, `sign = -1` uses `−g`
    /// (the second point of a two-sided estimate). Returns the λ used (see [`Target::lambda`]).
    pub fn params(&self, theta: &[f32], g: &[f32], sign: f32, out: &mut [f32]) -> Option<f32> {
        match self {
            Target::Combinatorial => {
                for ((o, &t), &gi) in out.iter_mut().zip(theta).zip(g) {
                    *o = if gi == 0.0 { t } else { -sign * gi };
                }
                None
            }
            Target::Custom(t) => t.params(theta, g, sign, out),
            Target::Pid { .. } | Target::Adaptive(_) => {
                let alpha = match self {
                    Target::Pid { alpha, .. } => *alpha,
                    _ => 1.0,
                };
                let lambda = self.lambda(theta, g);
                let step = sign * lambda.unwrap_or(0.0);
                for ((o, &t), &gi) in out.iter_mut().zip(theta).zip(g) {
                    *o = alpha * t - step * gi;
                }
                lambda
            }
        }
    }

    /// Called by the estimators after each backward pass with the estimated gradient,
    /// so that adaptive targets can update their state. A no-op for fixed targets.
    pub fn observe(&self, gradient: &[f32]) {
        match self {
            Target::Adaptive(a) => a.observe(gradient),
            Target::Custom(t) => t.observe(gradient),
            Target::Pid { .. } | Target::Combinatorial => {}
        }
    }
}

/// State and settings of the adaptive λ of AIMLE: `λ = β·‖θ‖/‖g‖` per example.
///
/// After each backward pass, the fraction `f` of non-zero entries of the estimated
/// gradient is folded into a running average `r ← m·r + (1 − m)·f`; then `β ← β·(1 + step)`
/// if `r` is below `target_nonzero`, else `β ← β/(1 + step)`. A zero gradient means θ and
/// θ' gave the same MAP state, i.e. λ was too small to move it.
#[derive(Debug)]
pub struct AdaptiveLambda {
    /// The fraction of non-zero gradient entries to track.
    pub target_nonzero: f32,
    /// The multiplicative step of β.
    pub step: f32,
    /// Momentum `m` of the running fraction.
    pub momentum: f32,
    state: Mutex<AdaptiveState>,
}

#[derive(Debug, Clone, Copy)]
struct AdaptiveState {
    beta: f32,
    running: Option<f32>,
}

impl AdaptiveLambda {
    /// Adaptive λ starting at `beta0 > 0`, tracking `target_nonzero` in (0, 1].
    /// Defaults: `step = 0.01`, `momentum = 0.9`.
    pub fn new(beta0: f32, target_nonzero: f32) -> Result<Self> {
        check_positive("beta0", beta0 as f64)?;
        if !(target_nonzero > 0.0 && target_nonzero <= 1.0) {
            return Err(Error::InvalidParameter {
                name: "target_nonzero",
                value: target_nonzero as f64,
                reason: "must lie in (0, 1]",
            });
        }
        Ok(Self {
            target_nonzero,
            step: 0.01,
            momentum: 0.9,
            state: Mutex::new(AdaptiveState {
                beta: beta0,
                running: None,
            }),
        })
    }

    /// The current β.
    pub fn beta(&self) -> f32 {
        self.lock().beta
    }

    /// The running fraction of non-zero gradient entries (None before any update).
    pub fn running_nonzero(&self) -> Option<f32> {
        self.lock().running
    }

    /// Restores a state read with [`AdaptiveLambda::beta`] and
    /// [`AdaptiveLambda::running_nonzero`] (e.g. when resuming from a checkpoint).
    pub fn restore(&self, beta: f32, running_nonzero: Option<f32>) -> Result<()> {
        check_positive("beta", beta as f64)?;
        let mut s = self.lock();
        s.beta = beta;
        s.running = running_nonzero;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AdaptiveState> {
        // The state is two floats: a panic elsewhere cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `λ = β·‖θ‖/‖g‖` (None if `g = 0`; `β` if `θ = 0`).
    pub fn lambda(&self, theta: &[f32], g: &[f32]) -> Option<f32> {
        let gn = norm(g);
        if gn == 0.0 {
            return None;
        }
        let tn = norm(theta);
        let beta = self.beta();
        Some(if tn > 0.0 { beta * tn / gn } else { beta })
    }

    /// Updates the running non-zero fraction and β from an estimated gradient.
    pub fn observe(&self, gradient: &[f32]) {
        if gradient.is_empty() {
            return;
        }
        let f = gradient.iter().filter(|v| **v != 0.0).count() as f32 / gradient.len() as f32;
        let mut s = self.lock();
        let r = match s.running {
            Some(r) => self.momentum * r + (1.0 - self.momentum) * f,
            None => f,
        };
        s.running = Some(r);
        if r < self.target_nonzero {
            s.beta *= 1.0 + self.step;
        } else {
            s.beta /= 1.0 + self.step;
        }
    }
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_is_eq_10() {
        let t = Target::pid_with_alpha(2.0, 0.5).unwrap();
        let mut out = [0.0; 2];
        assert_eq!(
            t.params(&[1.0, -2.0], &[0.5, 1.0], 1.0, &mut out),
            Some(2.0)
        );
        assert_eq!(out, [0.5 - 1.0, -1.0 - 2.0]);
        t.params(&[1.0, -2.0], &[0.5, 1.0], -1.0, &mut out);
        assert_eq!(out, [0.5 + 1.0, -1.0 + 2.0]);
    }

    #[test]
    fn combinatorial_is_eq_14() {
        let mut out = [0.0; 3];
        assert_eq!(
            Target::Combinatorial.params(&[1.0, 2.0, 3.0], &[0.0, -4.0, 5.0], 1.0, &mut out),
            None
        );
        assert_eq!(out, [1.0, 4.0, -5.0]);
    }

    #[test]
    fn adaptive_lambda_scales_with_norms_and_tracks_target() {
        let a = AdaptiveLambda::new(1.0, 0.5).unwrap();
        // ‖θ‖ = 5, ‖g‖ = 1 → λ = 5β.
        assert_eq!(a.lambda(&[3.0, 4.0], &[0.0, 1.0]), Some(5.0));
        assert_eq!(a.lambda(&[3.0, 4.0], &[0.0, 0.0]), None);
        // All-zero gradients: β must grow.
        for _ in 0..10 {
            a.observe(&[0.0; 4]);
        }
        assert!(a.beta() > 1.0);
        let b = a.beta();
        // All non-zero gradients: β must shrink.
        for _ in 0..50 {
            a.observe(&[1.0; 4]);
        }
        assert!(a.beta() < b);
        // A restored state continues exactly like the original.
        let c = AdaptiveLambda::new(1.0, 0.5).unwrap();
        c.restore(a.beta(), a.running_nonzero()).unwrap();
        a.observe(&[0.0, 1.0, 0.0, 0.0]);
        c.observe(&[0.0, 1.0, 0.0, 0.0]);
        assert_eq!(
            (a.beta(), a.running_nonzero()),
            (c.beta(), c.running_nonzero())
        );
        assert!(c.restore(0.0, None).is_err());
    }

    #[test]
    fn bad_parameters_are_errors() {
        assert!(Target::pid(0.0).is_err());
        assert!(Target::pid(f32::NAN).is_err());
        assert!(AdaptiveLambda::new(1.0, 0.0).is_err());
        assert!(AdaptiveLambda::new(-1.0, 0.5).is_err());
    }
}
