//! Value conversions between the runtime spec (shaped after cgroup v1) and cgroup v2,
//! matching what runc and crun write so a container gets the same limits under any runtime.

use anyhow::{bail, Result};

/// Largest v1 `cpu.shares` and v2 `cpu.weight`.
const MAX_SHARES: u64 = 262_144;
const MAX_WEIGHT: u64 = 10_000;

/// v1 `cpu.shares` [2, 262144] to v2 `cpu.weight` [1, 10000]; 0 stays 0 (unset).
///
/// A quadratic in log2(shares), fitted so that the minimum, the default (1024 -> 100)
/// and the maximum map exactly. runc (1.3+) and crun use this curve; the older
/// linear formula mapped the default 1024 to 39, starving containers next to
/// processes at the default weight.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= MAX_SHARES {
        return MAX_WEIGHT;
    }
    // The pure-Rust libm (musl's algorithms) gives the same weight as glibc's for
    // every shares value in range (checked exhaustively), and spares kraal loading
    // libm.so at every start.
    let l = libm::log2(shares as f64);
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    (libm::ceil(libm::pow(10.0, exponent)) as u64).clamp(1, MAX_WEIGHT)
}

/// The inverse of [`shares_to_weight`]: the largest shares value that maps to at
/// most `weight`, so `shares_to_weight(weight_to_shares(w)) == w` for every weight the
/// forward mapping produces (and 100 gives back the default 1024).
pub fn weight_to_shares(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    if weight <= 1 {
        return 2;
    }
    if weight >= MAX_WEIGHT {
        return MAX_SHARES;
    }
    // Solve l² + 125·l − 612·(log10(w) + 7/34) = 0 for the positive root, then step
    // over the rounding of ceil() in the forward direction (a few steps at most).
    let c = 612.0 * (libm::log10(weight as f64) + 7.0 / 34.0);
    let l = (-125.0 + libm::sqrt(125.0f64 * 125.0 + 4.0 * c)) / 2.0;
    let mut s = (libm::round(libm::pow(2.0, l)) as u64).clamp(2, MAX_SHARES);
    while s > 2 && shares_to_weight(s) > weight {
        s -= 1;
    }
    while s < MAX_SHARES && shares_to_weight(s + 1) <= weight {
        s += 1;
    }
    s
}

/// v1 `blkio.weight` [10, 1000] to v2 `io.weight` [1, 10000], linearly; 0 stays 0.
pub fn blkio_to_io_weight(w: u16) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + u64::from(w).saturating_sub(10) * 9999 / 990
}

/// The spec's `memory.swap` is memory+swap (v1's memsw); v2's `memory.swap.max` is
/// swap alone. Returns the v2 value: -1 for "max", 0 for "leave alone", else bytes.
pub fn swap_to_v2(swap: i64, limit: i64) -> Result<i64> {
    Ok(match (swap, limit) {
        // Unlimited memory without a swap value: unlimited swap too, as v1 would give.
        (0, -1) => -1,
        (-1, _) | (0, _) => swap,
        (_, -1) => swap,
        (_, 0) => bail!(
            "memory.swap: cannot be set without memory.limit on cgroup v2 (it is memory+swap)"
        ),
        (_, l) if l < 0 => bail!("memory.limit: {l} is not a valid limit"),
        (s, l) if s < l => {
            bail!("memory.swap: {s} is below memory.limit {l} (swap is memory+swap)")
        }
        (s, l) => s - l,
    })
}

/// The spec's page size name (`2MB`, `64KB`, `1GB`) for a size in kB, as the kernel's
/// hugetlb control files spell it.
pub fn page_size_name(kb: u64) -> String {
    let mut v = kb * 1024;
    for unit in ["B", "KB", "MB", "GB", "TB", "PB"] {
        if v < 1024 || v % 1024 != 0 {
            return format!("{v}{unit}");
        }
        v /= 1024;
    }
    format!("{v}EB")
}

/// Huge page sizes this kernel supports, by their spec names.
pub fn host_page_sizes() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut out: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().into_string().ok()?;
            let kb = n.strip_prefix("hugepages-")?.strip_suffix("kB")?;
            Some(page_size_name(kb.parse().ok()?))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_weight_fixed_points() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1 << 20), 10_000);
        // Values runc's formula gives (ceil of the curve).
        assert_eq!(shares_to_weight(512), 59);
        assert_eq!(shares_to_weight(2048), 174);
        assert_eq!(shares_to_weight(100), 17);
        assert_eq!(weight_to_shares(100), 1024);
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(10_000), 262_144);
    }

    /// The curve as crun computes it (the C library's log2 and pow; std's f64
    /// methods call the same ones) agrees with kraal's pure-Rust one everywhere.
    #[test]
    fn shares_weight_matches_the_c_library_everywhere() {
        for s in 3..MAX_SHARES {
            let l = (s as f64).log2();
            let e = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
            let c = (10f64.powf(e).ceil() as u64).clamp(1, MAX_WEIGHT);
            assert_eq!(shares_to_weight(s), c, "shares {s}");
        }
    }

    #[test]
    fn shares_weight_round_trip() {
        let mut last = 0;
        for s in (2..=262_144u64).step_by(7) {
            let w = shares_to_weight(s);
            assert!(w >= last, "not monotonic at {s}");
            last = w;
            let back = weight_to_shares(w);
            assert_eq!(shares_to_weight(back), w, "{s} -> {w} -> {back}");
        }
    }

    #[test]
    fn blkio_weight() {
        assert_eq!(blkio_to_io_weight(0), 0);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
        assert_eq!(blkio_to_io_weight(500), 4950);
    }

    #[test]
    fn swap() {
        assert_eq!(swap_to_v2(0, -1).unwrap(), -1);
        assert_eq!(swap_to_v2(-1, 100).unwrap(), -1);
        assert_eq!(swap_to_v2(0, 100).unwrap(), 0);
        assert_eq!(swap_to_v2(300, -1).unwrap(), 300);
        assert_eq!(swap_to_v2(300, 100).unwrap(), 200);
        assert_eq!(swap_to_v2(100, 100).unwrap(), 0);
        assert!(swap_to_v2(50, 100).is_err());
        assert!(swap_to_v2(50, 0).is_err());
    }

    #[test]
    fn page_names() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1_048_576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
        assert_eq!(page_size_name(32 * 1024 * 1024), "32GB");
    }
}
