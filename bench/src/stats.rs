//! Percentiles and the driver's own CPU use.

use anyhow::Result;

/// The `q` quantile (0..=1) of `samples` (sorted in place); `None` when empty.
/// Missing samples (a keystroke that never arrived) are passed as `f64::INFINITY`.
pub fn quantile(samples: &mut [f64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let idx = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples.get(idx).copied()
}

pub fn median(samples: &mut [f64]) -> Option<f64> {
    quantile(samples, 0.5)
}

/// CPU seconds used by this process so far.
pub fn own_cpu_seconds() -> Result<f64> {
    crate::servers::cpu_seconds(std::process::id())
}

/// A duration in milliseconds, readable in a table.
pub fn ms(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(v) if v.is_infinite() => "lost".into(),
        Some(v) if v >= 100.0 => format!("{v:.0} ms"),
        Some(v) if v >= 10.0 => format!("{v:.1} ms"),
        Some(v) => format!("{v:.2} ms"),
    }
}
