//! Statistics helpers of the experiments: mean and standard deviation, the
//! Kolmogorov–Smirnov test, grids.

/// Mean and population standard deviation (ddof = 0) of the finite values; NaN if none.
pub fn mean_std(v: impl IntoIterator<Item = f64>) -> (f64, f64) {
    let v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / n;
    (m, var.sqrt())
}

/// `mean ± std` with `digits` decimals, or `–` when the mean is not finite (no runs).
pub fn pm((m, s): (f64, f64), digits: usize) -> String {
    if m.is_finite() {
        format!("{m:.digits$} ± {s:.digits$}")
    } else {
        "–".into()
    }
}

/// The median of the finite values (the mean of the middle two for an even count);
/// NaN if none.
pub fn median(v: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// `n` evenly spaced values from `start` to `stop` inclusive (numpy's `linspace`).
pub fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => vec![],
        1 => vec![start],
        _ => (0..n)
            .map(|i| start + (stop - start) * i as f64 / (n - 1) as f64)
            .collect(),
    }
}

/// Kolmogorov–Smirnov distance `sup |F_n − F|` between the empirical CDF of `samples`
/// and the CDF `cdf`, with the asymptotic p-value.
pub fn ks_test(samples: &[f64], cdf: impl Fn(f64) -> f64) -> (f64, f64) {
    let mut s: Vec<f64> = samples.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len() as f64;
    let mut d: f64 = 0.0;
    for (i, &x) in s.iter().enumerate() {
        let f = cdf(x);
        d = d.max((i as f64 + 1.0) / n - f).max(f - i as f64 / n);
    }
    (d, kolmogorov_p(d, s.len()))
}

/// Asymptotic p-value of the KS statistic `d` for `n` samples (Stephens' correction).
pub fn kolmogorov_p(d: f64, n: usize) -> f64 {
    let sn = (n as f64).sqrt();
    let l = (sn + 0.12 + 0.11 / sn) * d;
    if l < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for j in 1..=100 {
        let j = j as f64;
        let term = 2.0 * (-1f64).powf(j - 1.0) * (-2.0 * j * j * l * l).exp();
        sum += term;
        if term.abs() < 1e-12 {
            break;
        }
    }
    sum.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy() {
        assert_eq!(linspace(0.5, 1.0, 5), vec![0.5, 0.625, 0.75, 0.875, 1.0]);
        assert_eq!(linspace(0.5, 3.0, 6), vec![0.5, 1.0, 1.5, 2.0, 2.5, 3.0]);
    }

    #[test]
    fn mean_std_and_median_of_a_small_sample() {
        assert_eq!(mean_std([1.0, 3.0, f64::NAN]), (2.0, 1.0));
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median([]).is_nan());
    }

    #[test]
    fn ks_of_uniform_grid_is_small() {
        let s: Vec<f64> = (0..1000).map(|i| (i as f64 + 0.5) / 1000.0).collect();
        let (d, p) = ks_test(&s, |x| x.clamp(0.0, 1.0));
        assert!(d <= 0.0005 + 1e-12, "{d}");
        assert!(p > 0.99);
        let (d, p) = ks_test(&s, |x| (x * x).clamp(0.0, 1.0));
        assert!(d > 0.2 && p < 1e-6);
    }
}
