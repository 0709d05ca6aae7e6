//! The configuration file: TOML, `$XDG_CONFIG_HOME/esession/config.toml` (or
//! `~/.config/esession/config.toml`) when it exists, or the file `--config` names. It may hold
//! the password, so it is refused when anyone but its owner may read or write it.
//!
//! ```toml
//! jid = "alice@example.org"
//! password = "..."            # else ESESSION_PASSWORD, else a prompt
//! server = "xmpp.example.org:5222"   # default: the JID's domain, port 5222
//! data = "/home/alice/.local/share/esession/alice@example.org"
//! starttls = true             # default: true unless the server is on loopback
//! direct_tls = false          # true: direct TLS (XEP-0368) to `server` = "host:port"
//! profile = "xep"             # or "gajim"
//! timeout = 20                # seconds
//! trust_on_first_use = false  # the default (see docs/xmpp.md)
//! ```
//!
//! Options on the command line (and their environment variables) win over the file.

use crate::exit::{Exit, Fail};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// What the file may set. Unknown keys are refused (a typo must not pass silently).
#[derive(Deserialize, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) jid: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) server: Option<String>,
    pub(crate) data: Option<PathBuf>,
    pub(crate) passphrase: Option<String>,
    pub(crate) starttls: Option<bool>,
    pub(crate) direct_tls: Option<bool>,
    pub(crate) profile: Option<String>,
    pub(crate) timeout: Option<u64>,
    pub(crate) trust_on_first_use: Option<bool>,
}

impl core::fmt::Debug for FileConfig {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let secret = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("FileConfig")
            .field("jid", &self.jid)
            .field("password", &secret(&self.password))
            .field("server", &self.server)
            .field("data", &self.data)
            .field("passphrase", &secret(&self.passphrase))
            .field("starttls", &self.starttls)
            .field("direct_tls", &self.direct_tls)
            .field("profile", &self.profile)
            .field("timeout", &self.timeout)
            .field("trust_on_first_use", &self.trust_on_first_use)
            .finish()
    }
}

impl Drop for FileConfig {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for s in [&mut self.password, &mut self.passphrase].into_iter().flatten() {
            s.zeroize();
        }
    }
}

/// The default configuration file: `$XDG_CONFIG_HOME/esession/config.toml`, else
/// `$HOME/.config/esession/config.toml`.
pub(crate) fn default_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("esession").join("config.toml"))
}

/// Parses the text of a configuration file (`path` only names it in errors).
pub(crate) fn parse(path: &Path, text: &str) -> Result<FileConfig, Fail> {
    toml::from_str::<FileConfig>(text).map_err(|e| {
        // toml's message spans several lines (with a caret under the culprit): one line here.
        let msg = e.message().trim().to_owned();
        let at = e
            .span()
            .map(|s| format!(":{}", text[..s.start.min(text.len())].matches('\n').count() + 1))
            .unwrap_or_default();
        Fail::new(Exit::Config, format!("{}{at}: {msg}", path.display()))
    })
}

/// Refuses a file that others may read or write (it may hold a password), or that belongs to
/// someone else. `mode` and `owner` are the file's, `me` the effective user.
pub(crate) fn check_private(path: &Path, mode: u32, owner: u32, me: u32) -> Result<(), Fail> {
    if owner != me {
        return Err(Fail::new(
            Exit::Config,
            format!("{} belongs to another user (uid {owner}): not used", path.display()),
        ));
    }
    if mode & 0o077 != 0 {
        return Err(Fail::new(
            Exit::Config,
            format!(
                "{} may be read or changed by others (mode {:04o}) and may hold a password: not used; \
                 `chmod 600 {}` first",
                path.display(),
                mode & 0o7777,
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Loads `explicit` (which must exist), else the default file when it exists, else nothing.
pub(crate) fn load(explicit: Option<&Path>) -> Result<FileConfig, Fail> {
    let path = match explicit {
        Some(p) => p.to_owned(),
        None => match default_path() {
            Some(p) if p.exists() => p,
            _ => return Ok(FileConfig::default()),
        },
    };
    let meta =
        std::fs::metadata(&path).map_err(|e| Fail::new(Exit::Config, format!("{}: {e}", path.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        check_private(&path, meta.mode(), meta.uid(), nix::unistd::geteuid().as_raw())?;
    }
    #[cfg(not(unix))]
    let _ = meta;
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(&path)
            .map_err(|e| Fail::new(Exit::Config, format!("{}: {e}", path.display())))?,
    );
    parse(&path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> &'static Path {
        Path::new("config.toml")
    }

    #[test]
    fn every_key_parses() {
        let c = parse(
            p(),
            r#"
            # a comment
            jid = "alice@example.org"
            password = "pw"
            server = "xmpp.example.org:5222"
            data = "/tmp/alice"
            passphrase = "long words"
            starttls = true
            direct_tls = true
            profile = "gajim"
            timeout = 5
            trust_on_first_use = false
            "#,
        )
        .unwrap();
        assert_eq!(c.jid.as_deref(), Some("alice@example.org"));
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.server.as_deref(), Some("xmpp.example.org:5222"));
        assert_eq!(c.data.as_deref(), Some(Path::new("/tmp/alice")));
        assert_eq!(c.passphrase.as_deref(), Some("long words"));
        assert_eq!(c.starttls, Some(true));
        assert_eq!(c.direct_tls, Some(true));
        assert_eq!(c.profile.as_deref(), Some("gajim"));
        assert_eq!(c.timeout, Some(5));
        assert_eq!(c.trust_on_first_use, Some(false));
    }

    #[test]
    fn empty_file_sets_nothing() {
        assert_eq!(parse(p(), "").unwrap(), FileConfig::default());
    }

    #[test]
    fn unknown_keys_wrong_types_and_bad_syntax_are_config_errors_with_a_line() {
        let e = parse(p(), "jid = \"a@b\"\npasword = \"x\"\n").unwrap_err();
        assert_eq!(e.exit, Exit::Config);
        assert!(e.msg.starts_with("config.toml:2: "), "{}", e.msg);
        assert!(e.msg.contains("pasword"), "{}", e.msg);
        let e = parse(p(), "timeout = \"soon\"\n").unwrap_err();
        assert_eq!(e.exit, Exit::Config);
        assert!(e.msg.starts_with("config.toml:1: "), "{}", e.msg);
        // The old `key = value` format without quotes is not TOML: said so, one line.
        let e = parse(p(), "jid = alice@example.org\n").unwrap_err();
        assert_eq!(e.exit, Exit::Config);
        assert_eq!(e.msg.lines().count(), 1, "{}", e.msg);
    }

    #[test]
    fn the_password_never_shows_in_debug() {
        let c = parse(p(), "password = \"hunter2\"\npassphrase = \"swordfish\"\n").unwrap();
        let d = format!("{c:?}");
        assert!(!d.contains("hunter2") && !d.contains("swordfish"), "{d}");
        assert!(d.contains("<redacted>"), "{d}");
    }

    #[test]
    fn a_file_others_may_read_or_write_is_refused() {
        assert!(check_private(p(), 0o100600, 1000, 1000).is_ok());
        assert!(check_private(p(), 0o100400, 1000, 1000).is_ok());
        for mode in [0o100644, 0o100640, 0o100604, 0o100620, 0o100602, 0o100660] {
            let e = check_private(p(), mode, 1000, 1000).unwrap_err();
            assert_eq!(e.exit, Exit::Config, "{mode:o}");
            assert!(e.msg.contains("chmod 600"), "{}", e.msg);
        }
        let e = check_private(p(), 0o100600, 0, 1000).unwrap_err();
        assert_eq!(e.exit, Exit::Config);
        assert!(e.msg.contains("another user"), "{}", e.msg);
    }

    #[cfg(unix)]
    #[test]
    fn load_checks_the_real_file_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("esession-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("config.toml");
        std::fs::write(&f, "jid = \"alice@example.org\"\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(Some(&f)).unwrap_err();
        assert_eq!(e.exit, Exit::Config);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(load(Some(&f)).unwrap().jid.as_deref(), Some("alice@example.org"));
        // A named file that is not there is an error; the default one is optional.
        let e = load(Some(&dir.join("missing.toml"))).unwrap_err();
        assert_eq!(e.exit, Exit::Config);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
