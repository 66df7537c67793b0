//! Parsers of the experiments' command-line values: ranges, positive numbers, method
//! lists and `METHOD=SPEC` estimator overrides.

use super::*;

/// A linspace given on the command line as `START,STOP,N`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Linspace {
    /// First value.
    pub start: f64,
    /// Last value.
    pub stop: f64,
    /// Number of values.
    pub n: usize,
}

impl Linspace {
    /// The values.
    pub fn values(&self) -> Vec<f64> {
        linspace(self.start, self.stop, self.n)
    }
}

impl std::str::FromStr for Linspace {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        if parts.len() != 3 {
            return Err(format!("expected START,STOP,N (e.g. 0.5,1,5), got '{s}'"));
        }
        let start: f64 = parts[0]
            .parse()
            .map_err(|_| format!("bad START '{}'", parts[0]))?;
        let stop: f64 = parts[1]
            .parse()
            .map_err(|_| format!("bad STOP '{}'", parts[1]))?;
        let n: usize = parts[2]
            .parse()
            .map_err(|_| format!("bad N '{}'", parts[2]))?;
        if !(start.is_finite() && stop.is_finite()) || n == 0 {
            return Err(format!(
                "START and STOP must be finite and N >= 1, got '{s}'"
            ));
        }
        Ok(Self { start, stop, n })
    }
}

/// clap value parser: a finite number > 0.
pub fn positive_f64(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number > 0, got {s}"))
    }
}

/// clap value parser: a finite number >= 0.
pub fn non_negative_f64(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("'{s}' is not a number"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be a finite number >= 0, got {s}"))
    }
}

/// The estimator override `METHOD=SPEC` of `--spec` (SPEC: `kind:key=value,...` or JSON,
/// see [`crate::spec`]), the method read by `parse`.
pub fn method_spec<M>(
    s: &str,
    parse: impl Fn(&str) -> Option<M>,
) -> std::result::Result<(M, crate::spec::EstimatorSpec), String> {
    let (m, spec) = s
        .split_once('=')
        .ok_or_else(|| format!("expected METHOD=SPEC, got '{s}'"))?;
    let method = parse(m.trim()).ok_or_else(|| format!("unknown method '{m}'"))?;
    let spec = spec.parse().map_err(|e| format!("{e:#}"))?;
    Ok((method, spec))
}

/// The methods of `--methods`, each read by `parse`; an unknown name lists `choices`, an
/// empty list is an error.
pub fn parse_methods<M>(
    names: &[String],
    parse: impl Fn(&str) -> Option<M>,
    choices: &[&str],
) -> Result<Vec<M>> {
    let methods = names
        .iter()
        .map(|n| {
            parse(n.trim()).with_context(|| {
                format!("unknown method '{n}'; choose from {}", choices.join(", "))
            })
        })
        .collect::<Result<Vec<M>>>()?;
    if methods.is_empty() {
        anyhow::bail!("--methods needs at least one method");
    }
    Ok(methods)
}

/// clap value parser: an integer >= 1.
pub fn positive_usize(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(v) if v >= 1 => Ok(v),
        _ => Err(format!("must be an integer >= 1, got {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linspace_parses() {
        let l: Linspace = "0.5,1,5".parse().unwrap();
        assert_eq!(l.values().len(), 5);
        assert!("0.5,1".parse::<Linspace>().is_err());
    }
}
