//! Exit statuses: one per kind of failure a script may want to tell apart (docs/xmpp.md lists
//! them), and the one-line message that goes with it.

use esession_xmpp::Error;
use std::fmt;
use std::process::ExitCode;

/// Why a command failed (its exit status). Success is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 1: a failure not listed below (a protocol or store error, a file that cannot be written).
    Failure,
    /// 2: the command line is wrong (unknown option, missing argument, a JID that does not
    /// parse, a needed option missing and no terminal to ask on).
    Usage,
    /// 3: the configuration file cannot be used (unreadable, not TOML, unknown key, readable by
    /// others), or the configuration cannot do what was asked.
    Config,
    /// 4: the account's data cannot be opened (wrong passphrase), or lacks what the command needs
    /// (no identity key, no account data yet).
    Account,
    /// 5: the server refused the login (wrong JID or password).
    Auth,
    /// 6: the server cannot be reached, the connection was lost, or no answer came in time.
    Network,
    /// 7: the server refused a request (publishing or withdrawing offline options...).
    Server,
    /// 8: the contact cannot be reached securely: not subscribed, offline without usable offline
    /// options, no support for encrypted sessions, an untrusted key, a failed negotiation.
    Contact,
    /// 9: the account's data is in use by another esession process (a running `chat`).
    InUse,
}

impl Exit {
    /// The exit status.
    pub(crate) fn code(self) -> u8 {
        match self {
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Config => 3,
            Exit::Account => 4,
            Exit::Auth => 5,
            Exit::Network => 6,
            Exit::Server => 7,
            Exit::Contact => 8,
            Exit::InUse => 9,
        }
    }

    /// Every status, in order (for the documentation test).
    #[cfg(test)]
    pub(crate) const ALL: [Exit; 9] = [
        Exit::Failure,
        Exit::Usage,
        Exit::Config,
        Exit::Account,
        Exit::Auth,
        Exit::Network,
        Exit::Server,
        Exit::Contact,
        Exit::InUse,
    ];
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// A failed command: its status and one line for the person.
#[derive(Debug)]
pub(crate) struct Fail {
    pub(crate) exit: Exit,
    pub(crate) msg: String,
}

impl Fail {
    pub(crate) fn new(exit: Exit, msg: impl Into<String>) -> Self {
        Self { exit, msg: msg.into() }
    }

    pub(crate) fn usage(msg: impl Into<String>) -> Self {
        Self::new(Exit::Usage, msg)
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line whatever the cause carried.
        f.write_str(&self.msg.replace('\n', " "))
    }
}

/// Whether a store error is the refusal to open a database another process holds.
pub(crate) fn is_in_use(e: &Error) -> bool {
    matches!(e, Error::Store(s) if s.kind() == esession_negotiate::StoreErrorKind::Locked)
}

/// The status for each error of the client.
pub(crate) fn exit_of(e: &Error) -> Exit {
    match e {
        Error::BadJid { .. } => Exit::Usage,
        Error::Config(_) => Exit::Config,
        Error::WrongPassphrase => Exit::Account,
        Error::Auth(_) => Exit::Auth,
        Error::Unreachable { .. } | Error::Disconnected(_) | Error::Timeout(_) => Exit::Network,
        Error::Server { .. } => Exit::Server,
        Error::NoSupport(_)
        | Error::NotAvailable { .. }
        | Error::NotProtected(_)
        | Error::NoOfflineOptions { .. }
        | Error::Offline(_)
        | Error::Negotiation(_)
        | Error::Session(_) => Exit::Contact,
        e if is_in_use(e) => Exit::InUse,
        _ => Exit::Failure,
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        if is_in_use(&e) {
            return Fail::new(
                Exit::InUse,
                "this account's data is in use by another esession process (a running `chat`?): \
                 stop it first (read-only commands such as `trust list` still work)",
            );
        }
        Fail::new(exit_of(&e), in_words(&e))
    }
}

/// The error's text, with what the XMPP library below tells only by the Debug names of its
/// types (a DNS failure, a SASL condition) said in words.
fn in_words(e: &Error) -> String {
    let text = e.to_string();
    match e {
        Error::Unreachable { server, source: Some(s) } => {
            let cause = s.to_string();
            if !cause.starts_with("Dns(") {
                return text;
            }
            let why = if cause.contains("NXDomain") {
                "the domain does not exist (DNS says there is no such name)"
            } else if cause.contains("NoRecordsFound") {
                "the domain has no address (DNS has no SRV, A or AAAA record for it)"
            } else {
                "its name could not be resolved (DNS failed)"
            };
            format!(
                "cannot reach the server {server}: {why}; check the domain of the JID, or give --server HOST:PORT"
            )
        }
        Error::Auth(Some(s)) => {
            let cause = s.to_string();
            let Some(name) = cause.strip_prefix("failure from the server: ") else { return text };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                return text;
            }
            // The SASL condition (RFC 6120 §6.5), from its Debug name: `NotAuthorized` is
            // `not-authorized`.
            let mut condition = String::new();
            for (i, c) in name.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    condition.push('-');
                }
                condition.push(c.to_ascii_lowercase());
            }
            let why = match condition.as_str() {
                "not-authorized" => "the server says the JID or the password is wrong",
                "account-disabled" => "the server says this account is disabled",
                "credentials-expired" => "the server says the password has expired",
                "encryption-required" => "the server requires an encrypted connection for this login",
                "temporary-auth-failure" => "the server could not check the login just now: try again later",
                "mechanism-too-weak" => "the server finds the login method too weak",
                _ => "the server refused it",
            };
            format!("login refused: {why} ({condition})")
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statuses_are_distinct_and_usage_is_2() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|e| e.code()).collect();
        assert_eq!(codes, (1..=9).collect::<Vec<u8>>());
        assert_eq!(Exit::Usage.code(), 2, "clap's usage errors exit 2 too");
    }

    #[test]
    fn the_documentation_lists_every_status() {
        // docs/xmpp.md is the repository's: the packaged crate (cargo package) has no docs/,
        // and then only the crate's own README is checked.
        let readme = include_str!("../README.md");
        for e in Exit::ALL {
            let row = format!("| {} |", e.code());
            assert!(readme.contains(&row), "README.md has no row {row} for {e:?}");
        }
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
        if !std::path::Path::new(root).join("Cargo.toml").exists() {
            return;
        }
        let doc = std::fs::read_to_string(format!("{root}/docs/xmpp.md")).unwrap();
        for e in Exit::ALL {
            let row = format!("| {} |", e.code());
            assert!(doc.contains(&row), "docs/xmpp.md has no row {row} for {e:?}");
        }
    }

    #[test]
    fn client_errors_map_to_their_kind() {
        let bare = esession_xmpp::parse_bare("bob@example.org").unwrap();
        let cases: Vec<(Error, Exit)> = vec![
            (esession_xmpp::parse_jid("@@").unwrap_err(), Exit::Usage),
            (Error::Config("x".into()), Exit::Config),
            (Error::WrongPassphrase, Exit::Account),
            (Error::Auth(None), Exit::Auth),
            (Error::Unreachable { server: "s".into(), source: None }, Exit::Network),
            (Error::Disconnected(None), Exit::Network),
            (Error::Timeout("server"), Exit::Network),
            (Error::Server { action: "a".into(), condition: "forbidden".into() }, Exit::Server),
            (Error::NotAvailable { peer: bare.clone(), subscribed: false }, Exit::Contact),
            (Error::NoOfflineOptions { peer: bare.clone(), condition: None }, Exit::Contact),
            (Error::NotProtected(bare), Exit::Contact),
            (Error::Protocol("p".into()), Exit::Failure),
            (
                Error::Store(esession_negotiate::StoreError::new(
                    esession_negotiate::StoreErrorKind::Locked,
                    "x",
                )),
                Exit::InUse,
            ),
            (
                Error::Store(esession_negotiate::StoreError::new(
                    esession_negotiate::StoreErrorKind::Io,
                    "Database already open (a text is not a kind)",
                )),
                Exit::Failure,
            ),
            (
                Error::Store(esession_negotiate::StoreError::database(std::io::Error::other("disk full"))),
                Exit::Failure,
            ),
        ];
        for (e, want) in cases {
            let text = e.to_string();
            let f = Fail::from(e);
            assert_eq!(f.exit, want, "{text}");
            assert_eq!(f.to_string().lines().count(), 1);
        }
    }

    #[test]
    fn dns_failures_and_sasl_conditions_are_said_in_words() {
        let cause = |t: &str| -> Option<esession_xmpp::BoxError> {
            Some(Box::new(std::io::Error::other(t.to_owned())))
        };
        let nx = Error::Unreachable {
            server: "example.invalid".into(),
            source: cause(
                "Dns(NoRecordsFound(NoRecords { query: Query { name: Name(\"example.invalid.\") }, \
                 soa: None, ns: None, negative_ttl: None, response_code: NXDomain, trusted: true }))",
            ),
        };
        let t = Fail::from(nx).to_string();
        assert!(t.contains("example.invalid") && t.contains("does not exist"), "{t}");
        assert!(!t.contains("Dns(") && !t.contains("NXDomain"), "{t}");
        let none = Error::Unreachable {
            server: "example.org".into(),
            source: cause("Dns(NoRecordsFound(NoRecords { response_code: NoError }))"),
        };
        let t = Fail::from(none).to_string();
        assert!(t.contains("has no address") && !t.contains("NoRecords"), "{t}");
        let t = Fail::from(Error::Auth(cause("failure from the server: NotAuthorized"))).to_string();
        assert!(t.contains("JID or the password is wrong") && t.contains("(not-authorized)"), "{t}");
        assert!(!t.contains("NotAuthorized"), "{t}");
        // Anything else is left as the library says it.
        let t = Fail::from(Error::Auth(cause("no matching SASL mechanism available"))).to_string();
        assert!(t.contains("no matching SASL mechanism"), "{t}");
    }
}
