//! Typed wire names of the option fields that esession-crypto does not define (XEP-0155,
//! XEP-0116 §4.3, §11.2). Each has an exact `FromStr`/`Display` round trip and an `Unknown` case,
//! so a peer's unknown offers are negotiated away, not rejected.

use core::fmt;
use core::str::FromStr;

pub use esession_crypto::{CryptAlg, HashAlg, ModpGroup, SasAlg, SignAlg};

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vm])* $var,)+
            /// Any other value, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// Every known value.
            pub const KNOWN: &'static [$name] = &[$($name::$var),+];

            /// The wire value.
            #[must_use]
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$var => $s,)+
                    $name::Unknown(s) => s,
                }
            }
        }

        impl FromStr for $name {
            type Err = core::convert::Infallible;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Ok(match s {
                    $($s => $name::$var,)+
                    other => $name::Unknown(other.to_owned()),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum!(
    /// `disclosure` (XEP-0155; XEP-0116 §7.6 calls it `disclose`, A6).
    Disclosure {
        /// No feature could divulge the session (the only value we offer).
        Never => "never",
        /// Disclosure is possible but disabled.
        Disabled => "disabled",
        /// The session may be disclosed.
        Enabled => "enabled",
    }
);

wire_enum!(
    /// `security` (XEP-0155): how the session is protected.
    Security {
        /// End-to-end encryption (an ESession).
        E2e => "e2e",
        /// Client-to-server encryption only.
        C2s => "c2s",
        /// No protection.
        None => "none",
    }
);

wire_enum!(
    /// `compress` (XEP-0116 §8.6).
    Compress {
        /// No compression (MUST).
        None => "none",
        /// zlib (RFC 1950, MAY).
        Zlib => "zlib",
        /// lzw (ECMA-151, MAY).
        Lzw => "lzw",
    }
);

wire_enum!(
    /// `stanzas`: the stanza types the session encrypts.
    StanzaType {
        /// `<message/>`.
        Message => "message",
        /// `<presence/>`.
        Presence => "presence",
        /// `<iq/>`.
        Iq => "iq",
    }
);

wire_enum!(
    /// `init_pubkey` / `resp_pubkey`: how a party identifies itself (XEP-0116 §4.3 item 9).
    PubkeyMethod {
        /// The full `<KeyValue/>`.
        Key => "key",
        /// The key's fingerprint.
        Hash => "hash",
        /// No public key (4-message only).
        None => "none",
    }
);

wire_enum!(
    /// `ver`: the protocol version. Only `1.0` has a written meaning (A7).
    Version {
        /// Version 1.0 of XEP-0116.
        V1_0 => "1.0",
    }
);

/// `logging` (XEP-0155): whether messages may be logged.
///
/// Sent as `logging` with `may`/`mustnot`. On receipt, `otr` true/false and boolean `logging`
/// values are mapped too (A2): see [`Logging::from_field`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Logging {
    /// Messages may be logged.
    May,
    /// Messages must not be logged (nor stored in any form, XEP-0200 §11.2).
    MustNot,
    /// Any other value.
    Unknown(String),
}

impl Logging {
    /// The wire value of the `logging` field.
    #[must_use]
    pub fn as_str(&self) -> &str {
        match self {
            Logging::May => "may",
            Logging::MustNot => "mustnot",
            Logging::Unknown(s) => s,
        }
    }

    /// Reads a value of the field `var` (`logging` or the legacy `otr`), per A2:
    /// `logging` may/mustnot, `logging` true/1 = may and false/0 = mustnot, `otr` true = mustnot
    /// and false = may.
    #[must_use]
    pub fn from_field(var: &str, value: &str) -> Logging {
        match (var, value) {
            ("otr", "true" | "1") => Logging::MustNot,
            ("otr", "false" | "0") => Logging::May,
            ("logging", "may" | "true" | "1") => Logging::May,
            ("logging", "mustnot" | "false" | "0") => Logging::MustNot,
            (_, other) => Logging::Unknown(other.to_owned()),
        }
    }
}

impl FromStr for Logging {
    type Err = core::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "may" => Logging::May,
            "mustnot" => Logging::MustNot,
            other => Logging::Unknown(other.to_owned()),
        })
    }
}

impl fmt::Display for Logging {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: FromStr + fmt::Display>(s: &str) -> String
    where
        T::Err: fmt::Debug,
    {
        s.parse::<T>().map(|v| v.to_string()).unwrap_or_default()
    }

    #[test]
    fn exact_round_trips() {
        for s in ["never", "disabled", "enabled", "sometimes"] {
            assert_eq!(round_trip::<Disclosure>(s), s);
        }
        for s in ["e2e", "c2s", "none", "tls"] {
            assert_eq!(round_trip::<Security>(s), s);
        }
        for s in ["none", "zlib", "lzw", "bzip2"] {
            assert_eq!(round_trip::<Compress>(s), s);
        }
        for s in ["message", "presence", "iq", "x"] {
            assert_eq!(round_trip::<StanzaType>(s), s);
        }
        for s in ["key", "hash", "none", "x509"] {
            assert_eq!(round_trip::<PubkeyMethod>(s), s);
        }
        for s in ["1.0", "1.3"] {
            assert_eq!(round_trip::<Version>(s), s);
        }
        for s in ["may", "mustnot", "perhaps"] {
            assert_eq!(round_trip::<Logging>(s), s);
        }
        assert_eq!("1.3".parse::<Version>().unwrap(), Version::Unknown("1.3".into()));
        assert!(Security::KNOWN.contains(&Security::C2s));
    }

    #[test]
    fn logging_a2_mapping() {
        assert_eq!(Logging::from_field("otr", "true"), Logging::MustNot);
        assert_eq!(Logging::from_field("otr", "false"), Logging::May);
        assert_eq!(Logging::from_field("logging", "true"), Logging::May);
        assert_eq!(Logging::from_field("logging", "0"), Logging::MustNot);
        assert_eq!(Logging::from_field("logging", "mustnot"), Logging::MustNot);
        assert_eq!(Logging::from_field("otr", "may"), Logging::Unknown("may".into()));
    }
}
