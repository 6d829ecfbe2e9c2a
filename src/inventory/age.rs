//! `Age`: a span of time written the way operators write it (`90d`, `12h`, `2w`).
use std::fmt;
use std::str::FromStr;

/// A duration in whole seconds, parsed from `<number><unit>` with unit `s`, `m`, `h`,
/// `d` or `w` (a bare number is seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Age {
    secs: u64,
}

impl Age {
    /// The age in seconds.
    pub fn secs(self) -> u64 {
        self.secs
    }

    /// An age of `secs` seconds.
    pub fn from_secs(secs: u64) -> Age {
        Age { secs }
    }
}

impl FromStr for Age {
    type Err = String;

    fn from_str(text: &str) -> Result<Age, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let n: u64 = number
            .parse()
            .map_err(|_| format!("`{text}` is not an age such as 90d, 12h or 3600s"))?;
        let factor = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 604_800,
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{text}`: use s, m, h, d or w"
                ));
            }
        };
        n.checked_mul(factor)
            .filter(|s| *s > 0)
            .map(|secs| Age { secs })
            .ok_or_else(|| {
                format!("`{text}` must be more than 0 and less than a few billion years")
            })
    }
}

impl fmt::Display for Age {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, factor) in [("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60)] {
            if self.secs.is_multiple_of(factor) {
                return write!(f, "{}{unit}", self.secs / factor);
            }
        }
        write!(f, "{}s", self.secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_print_like_operators_write_them() {
        for (text, secs, shown) in [
            ("90d", 7_776_000, "90d"),
            ("12h", 43_200, "12h"),
            ("2w", 1_209_600, "2w"),
            ("3600", 3_600, "1h"),
            ("45s", 45, "45s"),
        ] {
            let age: Age = text.parse().expect(text);
            assert_eq!(age.secs(), secs, "{text}");
            assert_eq!(age.to_string(), shown);
        }
        for bad in ["", "d", "0d", "5y", "-3d", "99999999999999999w"] {
            assert!(bad.parse::<Age>().is_err(), "{bad}");
        }
    }
}
