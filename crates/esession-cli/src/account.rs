//! The account commands: keys, trust, contacts, chat, send, offline options, receive.
//!
//! Settings come from the command line (and `ESESSION_PASSWORD`, `ESESSION_PASSPHRASE`), then
//! from the configuration file ([`crate::config`]); a password or passphrase that is needed and
//! not given is asked for on the terminal, without echo. The account's data directory (`--data`,
//! default `$XDG_DATA_HOME/esession/JID` or `~/.local/share/esession/JID`) is created only by
//! the commands that write (mode 0700, its database 0600), and removed again when the login that
//! created it fails; read-only commands (`fingerprint`, `trust list`, `trust show`) create
//! nothing. Errors are one line on stderr with a distinct exit status ([`crate::exit`]).
//!
//! The account's database is one redb file, which one process at a time may open (esession-xmpp
//! opens it exclusively). While `chat` holds it, read-only commands read a snapshot of it (a
//! copy in a private directory inside the data directory, removed when they are done) and
//! commands that write say that the account is in use (exit status 9).

use crate::exit::{Exit, Fail};
use crate::show::{self, Place};
use clap::{Args, Subcommand};
use esession_crypto::{PrivateKey, Profile, PublicKey};
use esession_negotiate::KeyState;
use esession_xmpp::engine::{Inbox, Kept};
use esession_xmpp::{
    Account, BareJid, Client, Delivery, Error, Event, Jid, Options, Sealing, Tls, fingerprint, parse_bare,
    parse_jid,
};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use zeroize::Zeroizing;

/// Options shared by the account commands.
#[derive(Args, Default)]
pub(crate) struct Common {
    /// The account's JID (user@domain, or user@domain/resource).
    #[arg(long, global = true)]
    jid: Option<String>,
    /// The account's password (better: ESESSION_PASSWORD, the config file, or the prompt).
    #[arg(long, global = true, env = "ESESSION_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// The server as host[:port] (a name or an address; port 5222 by default). Default: the
    /// JID's domain, found through its DNS SRV records (`_xmpps-client._tcp` for direct TLS,
    /// `_xmpp-client._tcp` for STARTTLS).
    #[arg(long, global = true)]
    server: Option<String>,
    /// The account's data directory.
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// Seal stored secrets with a key derived from this passphrase (or ESESSION_PASSPHRASE);
    /// without it, a random key kept in DATA/seal.key.
    #[arg(long, global = true, env = "ESESSION_PASSPHRASE", hide_env_values = true)]
    passphrase: Option<String>,
    /// The configuration file (default: $XDG_CONFIG_HOME/esession/config.toml when it exists).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Require STARTTLS (the default for any server that is not on loopback); `--starttls=false`
    /// allows plain TCP, to a loopback server only (also yes/no, on/off, 1/0).
    #[arg(
        long,
        global = true,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    starttls: Option<bool>,
    /// Direct TLS (XEP-0368) to --server HOST:PORT (no default port; 5223 is the usual one).
    /// Without --server, the JID's domain's SRV records say where direct TLS is offered.
    #[arg(long, global = true, conflicts_with = "starttls")]
    direct_tls: bool,
    /// The wire profile: xep (the specifications, the default) or gajim (the deployed dialect).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Seconds to wait for the server or a contact (default 20).
    #[arg(long, global = true)]
    timeout: Option<u64>,
    /// Print events as JSON, one object per line (receive, chat, contact list).
    #[arg(long, global = true)]
    json: bool,
}

impl core::fmt::Debug for Common {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Common")
            .field("jid", &self.jid)
            .field("server", &self.server)
            .field("data", &self.data)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The account commands.
#[derive(Subcommand, Debug)]
pub(crate) enum AccountCmd {
    /// Generate the identity key (RSA by default).
    Keygen {
        /// A DSA 2048/256 key instead of RSA (slow: it generates domain parameters).
        #[arg(long)]
        dsa: bool,
        /// RSA modulus size.
        #[arg(long, default_value_t = 2048)]
        bits: usize,
        /// Replace an existing key.
        #[arg(long)]
        force: bool,
    },
    /// Print the identity key's fingerprint (and, with --pem FILE, write its public key; `-`
    /// prints it).
    Fingerprint {
        /// Write the public key (SPKI PEM) here for a contact to verify (`-`: standard output).
        #[arg(long)]
        pem: Option<PathBuf>,
        /// Read the sealed identity key (asking for the passphrase when the account has one),
        /// not the unsealed copy of its public key that serves when no passphrase is given.
        #[arg(long)]
        sealed: bool,
    },
    /// Contacts' keys: list, show, verify, refuse, untrust, petname.
    #[command(subcommand)]
    Trust(TrustCmd),
    /// Contacts: add, approve, deny, remove, list (presence subscriptions).
    #[command(subcommand)]
    Contact(ContactCmd),
    /// Chat with PEER interactively (/help lists the commands).
    Chat {
        /// The contact (user@domain, or user@domain/resource).
        peer: String,
    },
    /// Send one message: in a session if PEER is online, else in an offline session.
    Send {
        /// The contact.
        peer: String,
        /// The text.
        text: String,
    },
    /// Offline options (XEP-0187).
    #[command(subcommand)]
    Offline(OfflineCmd),
    /// Log in, process what arrived while away, print it, and leave.
    Receive {
        /// Also wait this many seconds for more.
        #[arg(long, default_value_t = 2)]
        wait: u64,
    },
}

/// `trust ...`
#[derive(Subcommand, Debug)]
pub(crate) enum TrustCmd {
    /// List the known keys.
    List,
    /// Show the keys known for a contact.
    Show {
        /// The contact's JID.
        contact: String,
    },
    /// Trust a contact's key: a PEM public key file (`-`: pasted on standard input), or the
    /// fingerprint of a key already seen (in a session, or on an offline message held because
    /// the key was not trusted). Compare the fingerprint with the contact first. The offline
    /// messages held for that key are shown then.
    Verify {
        /// The contact's JID.
        contact: String,
        /// A PEM file, `-`, or a fingerprint as `trust list` shows it.
        key: String,
    },
    /// Stop trusting a contact's key (all its keys when it has one only).
    #[command(visible_alias = "remove")]
    Untrust {
        /// The contact's JID.
        contact: String,
        /// The key's fingerprint (needed when the contact has several keys).
        fingerprint: Option<String>,
    },
    /// Drop the offline messages a contact sent with a key you do not trust (held until you
    /// decide), without trusting the key.
    Refuse {
        /// The contact's JID.
        contact: String,
        /// The key's fingerprint, as the held message showed it.
        fingerprint: String,
    },
    /// Give a known key a petname.
    Petname {
        /// The key's fingerprint.
        fingerprint: String,
        /// The name.
        name: String,
    },
}

/// `contact ...`
#[derive(Subcommand, Debug)]
pub(crate) enum ContactCmd {
    /// Ask to see a contact's presence.
    Add {
        /// The contact's JID.
        contact: String,
    },
    /// Let a contact who asked see your presence, and ask to see its presence too.
    Approve {
        /// The contact's JID.
        contact: String,
    },
    /// Refuse a contact's request to see your presence.
    Deny {
        /// The contact's JID.
        contact: String,
    },
    /// Stop sharing presence with a contact both ways, and remove it from the roster.
    Remove {
        /// The contact's JID.
        contact: String,
    },
    /// List the contacts whose presence you see, with their presence and keys, and pending
    /// requests.
    List {
        /// Wait this many seconds for presence to come in.
        #[arg(long, default_value_t = 2)]
        wait: u64,
    },
}

/// `offline ...`
#[derive(Subcommand, Debug)]
pub(crate) enum OfflineCmd {
    /// Terminate sessions, publish signed offline options, and go offline.
    Publish,
    /// Withdraw published options.
    Withdraw,
}

/// The settings in force: the command line over the configuration file over the defaults.
pub(crate) struct Settings {
    jid: Option<Jid>,
    password: Option<Zeroizing<String>>,
    server: Option<String>,
    data: Option<PathBuf>,
    passphrase: Option<Zeroizing<String>>,
    starttls: Option<bool>,
    direct_tls: bool,
    profile: Profile,
    pub(crate) timeout: Duration,
    pub(crate) json: bool,
    /// `trust_on_first_use = true` in the configuration file.
    first_use: bool,
}

impl Settings {
    /// Merges the command line with the configuration file.
    pub(crate) fn new(c: Common) -> Result<Self, Fail> {
        let mut f = crate::config::load(c.config.as_deref())?;
        let jid = match c.jid.or_else(|| f.jid.take()) {
            Some(j) => {
                let j = parse_jid(&j).map_err(|e| Fail::usage(format!("--jid: {e}")))?;
                if j.node().is_none() {
                    return Err(Fail::usage(format!("--jid: {j} has no user part (user@domain)")));
                }
                Some(j)
            }
            None => None,
        };
        let profile = match c.profile.or_else(|| f.profile.take()).as_deref() {
            None | Some("xep") => Profile::Xep,
            Some("gajim") => Profile::Gajim,
            Some(other) => return Err(Fail::usage(format!("--profile: xep or gajim, not {other:?}"))),
        };
        Ok(Self {
            jid,
            password: c.password.or_else(|| f.password.take()).map(Zeroizing::new),
            server: c.server.or_else(|| f.server.take()),
            data: c.data.or_else(|| f.data.take()),
            passphrase: c.passphrase.or_else(|| f.passphrase.take()).map(Zeroizing::new),
            starttls: c.starttls.or(f.starttls),
            direct_tls: c.direct_tls || (c.starttls.is_none() && f.direct_tls == Some(true)),
            profile,
            timeout: Duration::from_secs(c.timeout.or(f.timeout).unwrap_or(20)),
            json: c.json,
            first_use: f.trust_on_first_use == Some(true),
        })
    }

    fn jid(&self) -> Result<&Jid, Fail> {
        self.jid
            .as_ref()
            .ok_or_else(|| Fail::usage("--jid is needed (or `jid = \"...\"` in the config file)"))
    }

    /// The data directory.
    fn dir(&self) -> Result<PathBuf, Fail> {
        if let Some(d) = &self.data {
            return Ok(d.clone());
        }
        let jid = self.jid()?;
        let base = std::env::var_os("XDG_DATA_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")))
            .ok_or_else(|| Fail::usage("--data is needed (no HOME)"))?;
        Ok(earlier_dir(&base.join("esession"), &jid.to_bare()))
    }
}

/// The default data directory of `bare` in `parent`, named by the normalized JID. Versions
/// before JIDs were normalized named it as the JID was given (`Alice@LocalHost`): when the
/// normalized directory does not exist and exactly one directory in `parent` names the same
/// bare JID, it is renamed (said once on stderr; kept under its old name if it cannot be).
/// With more than one, none is chosen: the user picks with `--data`.
fn earlier_dir(parent: &Path, bare: &BareJid) -> PathBuf {
    let dir = parent.join(bare.as_str());
    if dir.exists() {
        return dir;
    }
    let Ok(entries) = std::fs::read_dir(parent) else { return dir };
    let earlier: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| e.file_name().to_str().and_then(|n| parse_bare(n).ok()).is_some_and(|j| j == *bare))
        .map(|e| e.path())
        .collect();
    let [old] = earlier.as_slice() else {
        if earlier.len() > 1 {
            eprintln!(
                "esession: {} directories in {} are accounts of {bare}; none is used (choose one with --data)",
                earlier.len(),
                parent.display()
            );
        }
        return dir;
    };
    match std::fs::rename(old, &dir) {
        Ok(()) => {
            eprintln!(
                "esession: the data directory {} is now {} (JIDs are normalized)",
                old.display(),
                dir.display()
            );
            dir
        }
        Err(e) => {
            eprintln!(
                "esession: using the data directory {} (cannot rename it to {}: {e})",
                old.display(),
                dir.display()
            );
            old.clone()
        }
    }
}

/// Asks on the terminal without echo; `None` without a terminal.
fn prompt_secret(prompt: &str) -> Result<Option<Zeroizing<String>>, Fail> {
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    rpassword::prompt_password(prompt)
        .map(|s| Some(Zeroizing::new(s)))
        .map_err(|e| Fail::new(Exit::Failure, format!("cannot read from the terminal: {e}")))
}

const DB: &str = "esession.redb";

/// The identity's public key, kept apart in the data directory (PEM) so that `fingerprint`
/// needs no passphrase: written by `keygen` and by every command that opens the account to
/// write (an account made by an earlier version gets it then). It is not sealed: each time the
/// account is opened (unlocked), it is compared with the sealed identity and written again when
/// it differs ([`keep_public`]); `fingerprint` says when it reads it instead of the sealed key.
const PUBLIC: &str = "identity.pub.pem";

/// Keeps the identity's public key in `dir`/[`PUBLIC`], from the sealed identity of the opened
/// `account`: a copy that holds another key (changed by hand or damaged) is written again, and
/// that is said on stderr; a missing copy is written only when `create` (read-only commands
/// create nothing). The file is written whole or not at all (a temporary file renamed over it)
/// and is owner-only (0600).
fn keep_public(dir: &Path, account: &Account, create: bool) -> Result<(), Fail> {
    let Some(key) = account.identity()? else { return Ok(()) };
    let public = key.public_key();
    let path = dir.join(PUBLIC);
    let io = |p: &Path, e: std::io::Error| Fail::new(Exit::Failure, format!("{}: {e}", p.display()));
    match std::fs::read_to_string(&path) {
        Ok(t) if pem_in(&t).as_ref() == Some(&public) => return tighten(&path, 0o600),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        _ => eprintln!(
            "esession: {} did not hold the public key of the sealed identity key (changed or damaged): \
             it is written again from the sealed key",
            path.display()
        ),
    }
    let text = public.to_public_key_pem().map_err(|e| Fail::new(Exit::Failure, e.to_string()))?;
    let tmp = dir.join(format!(".{PUBLIC}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let written = o.open(&tmp).and_then(|mut f| {
        use std::io::Write as _;
        f.write_all(text.as_bytes())?;
        f.sync_all()
    });
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, &path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(&path, e));
    }
    Ok(())
}

/// The identity's public key kept apart in `dir`, if it is (unsealed: see [`PUBLIC`]).
fn kept_public(dir: &Path) -> Option<PublicKey> {
    pem_in(&std::fs::read_to_string(dir.join(PUBLIC)).ok()?)
}

/// Whether the account in `dir` is sealed with a passphrase (rather than a key file).
fn passphrase_account(dir: &Path) -> bool {
    dir.join("salt").exists() && !dir.join("seal.key").exists()
}

/// An opened account. The snapshot (if any) goes after the account is closed.
pub(crate) struct Opened {
    pub(crate) account: Account,
    /// The topmost directory this command created for the data (removed if the login fails).
    created: Option<PathBuf>,
    _snapshot: Option<Snapshot>,
}

/// A private copy of an account's files, removed on drop.
struct Snapshot(PathBuf);

impl Drop for Snapshot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(unix)]
fn mode_of(p: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).ok().map(|m| m.permissions().mode() & 0o7777)
}

/// Makes `p` owner-only (`mode`) when others may use it (silently: it is what the user asked
/// for by keeping secrets there).
#[cfg(unix)]
fn tighten(p: &Path, mode: u32) -> Result<(), Fail> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(m) = mode_of(p)
        && m & 0o077 != 0
    {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Fail::new(Exit::Failure, format!("{}: {e}", p.display())))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_: &Path, _: u32) -> Result<(), Fail> {
    Ok(())
}

/// Creates the data directory (0700, parents too) and an empty database file (0600) when
/// missing; makes existing ones owner-only. Returns the topmost directory it created.
fn prepare(dir: &Path) -> Result<Option<PathBuf>, Fail> {
    let io = |p: &Path, e: std::io::Error| Fail::new(Exit::Failure, format!("{}: {e}", p.display()));
    let created =
        dir.ancestors().take_while(|a| !a.as_os_str().is_empty() && !a.exists()).last().map(Path::to_owned);
    if created.is_some() {
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            b.mode(0o700);
        }
        b.create(dir).map_err(|e| io(dir, e))?;
    } else {
        tighten(dir, 0o700)?;
    }
    let db = dir.join(DB);
    if db.exists() {
        tighten(&db, 0o600)?;
    } else {
        // redb initializes an empty file: created here with the mode it must have.
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        o.open(&db).map_err(|e| io(&db, e))?;
    }
    Ok(created)
}

/// The sealing for the account in `dir`: the passphrase given, asked for when the account was
/// sealed with one, offered when `new` (keygen on a terminal), else the key file.
fn sealing(s: &Settings, dir: &Path, new: bool, offer: bool) -> Result<Sealing, Fail> {
    if let Some(p) = &s.passphrase {
        return Ok(Sealing::Passphrase(p.clone()));
    }
    if !new && passphrase_account(dir) {
        return match prompt_secret(&format!("Passphrase of {}: ", dir.display()))? {
            Some(p) => Ok(Sealing::Passphrase(p)),
            None => Err(Fail::usage(
                "this account's secrets are sealed with a passphrase: give it with --passphrase, \
                 ESESSION_PASSPHRASE or `passphrase` in the config file",
            )),
        };
    }
    if new && offer {
        let ask = format!(
            "Passphrase to seal this account's secrets (Enter for none: a random key kept in {}): ",
            dir.join("seal.key").display()
        );
        if let Some(p) = prompt_secret(&ask)?
            && !p.is_empty()
        {
            let again = prompt_secret("The same passphrase again: ")?.unwrap_or_default();
            if again != p {
                return Err(Fail::usage("the two passphrases differ: nothing was created"));
            }
            return Ok(Sealing::Passphrase(p));
        }
    }
    Ok(Sealing::KeyFile)
}

/// Opens the account to read it: `None` when it has no data yet (nothing is created); a
/// snapshot when another process holds it.
pub(crate) fn open_read(s: &Settings) -> Result<Option<Opened>, Fail> {
    let dir = s.dir()?;
    if !dir.join(DB).exists() {
        return Ok(None);
    }
    let seal = sealing(s, &dir, false, false)?;
    let opened = match Account::open(&dir, seal) {
        Ok(account) => Opened { account, created: None, _snapshot: None },
        Err(e) if crate::exit::is_in_use(&e) => snapshot(s, &dir)?,
        Err(e) => return Err(e.into()),
    };
    // Unlocked: the unsealed copy of the public key is checked against the sealed identity.
    keep_public(&dir, &opened.account, false)?;
    Ok(Some(opened))
}

/// Copies the account's files into a private directory inside `dir` and opens the copy.
fn snapshot(s: &Settings, dir: &Path) -> Result<Opened, Fail> {
    let io = |p: &Path, e: std::io::Error| Fail::new(Exit::Failure, format!("{}: {e}", p.display()));
    let mut tag = [0u8; 8];
    rand_core::Rng::fill_bytes(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng), &mut tag);
    let copy = dir.join(format!(".snapshot-{}", hex::encode(tag)));
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(&copy).map_err(|e| io(&copy, e))?;
    let guard = Snapshot(copy.clone());
    for f in [DB, "seal.key", "salt"] {
        let from = dir.join(f);
        if from.exists() {
            std::fs::copy(&from, copy.join(f)).map_err(|e| io(&from, e))?;
        }
    }
    let account = Account::open(&copy, sealing(s, dir, false, false)?)?;
    Ok(Opened { account, created: None, _snapshot: Some(guard) })
}

/// Opens (or creates) the account to change it; `offer` offers a passphrase for a new account.
pub(crate) fn open_write(s: &Settings, offer: bool) -> Result<Opened, Fail> {
    let dir = s.dir()?;
    let new = !dir.join(DB).exists();
    let seal = sealing(s, &dir, new, offer)?;
    let created = prepare(&dir)?;
    match Account::open(&dir, seal) {
        Ok(account) => {
            keep_public(&dir, &account, true)?;
            Ok(Opened { account, created, _snapshot: None })
        }
        Err(e) => {
            if let Some(c) = created {
                let _ = std::fs::remove_dir_all(c);
            }
            Err(e.into())
        }
    }
}

/// Whether `server` (host[:port], an IP address, `[v6]:port`) is on loopback.
fn loopback(server: &str) -> bool {
    let host = match server.parse::<std::net::SocketAddr>() {
        Ok(sa) => return sa.ip().is_loopback(),
        Err(_) if server.parse::<std::net::IpAddr>().is_ok() => server,
        Err(_) => server.rsplit_once(':').map_or(server, |(h, _)| h),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// Logs in (the password asked for when not given), and processes what the server sent at
/// once. A data directory this command created is removed again when the login fails.
/// `accepting`: whether contacts may negotiate sessions with this resource (false for a
/// one-shot command, which leaves as soon as it is done: requests are declined and disco#info
/// announces no negotiation, [`esession_xmpp::Engine::set_accepting`]); set before the first
/// stanza from the server is processed.
pub(crate) async fn login(s: &Settings, accepting: bool) -> Result<Client, Fail> {
    let jid = s.jid()?.clone();
    let password = match &s.password {
        Some(p) => p.clone(),
        None => prompt_secret(&format!("Password for {}: ", jid.to_bare()))?.ok_or_else(|| {
            Fail::usage(
                "a password is needed: --password, ESESSION_PASSWORD, `password` in the config file, \
                 or run on a terminal to be asked",
            )
        })?,
    };
    let opened = open_write(s, false)?;
    let mut o = Options::new(jid.as_str(), &password, "");
    // No server: the JID's domain, through its SRV record (the client looks it up).
    o.server = s.server.clone().filter(|v| !v.trim().is_empty());
    o.tls = match s.starttls {
        _ if s.direct_tls => Tls::DirectTls,
        Some(true) => Tls::StartTls,
        Some(false) => Tls::PlainLoopbackOnly,
        None if loopback(o.server.as_deref().unwrap_or(jid.domain().as_str())) => Tls::PlainLoopbackOnly,
        None => Tls::StartTls,
    };
    o.profile = s.profile;
    o.timeout = s.timeout;
    let created = opened.created.clone();
    // Trust on first use: a contact's first key is pinned (verified) as its session is made.
    let builder = esession_xmpp::ClientBuilder::from(o).trust_on_first_use(s.first_use);
    let client = match builder.connect(opened.account).await {
        Ok(c) => c,
        Err(e) => {
            if let Some(d) = created {
                let _ = std::fs::remove_dir_all(d);
            }
            return Err(e.into());
        }
    };
    let mut client = client;
    client.engine_mut().set_accepting(accepting);
    client.settle().await?;
    Ok(client)
}

/// Runs one account command.
pub(crate) fn main(common: Common, cmd: AccountCmd) -> ExitCode {
    let r = Settings::new(common).and_then(|s| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Fail::new(Exit::Failure, e.to_string()))?;
        rt.block_on(run(&s, cmd))
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("esession: {e}");
            e.exit.into()
        }
    }
}

/// The fingerprint in the form `trust list` shows, from any spelling (spaces, case).
pub(crate) fn normal_fp(fp: &str) -> String {
    fp.chars().filter(char::is_ascii_hexdigit).collect::<String>().to_uppercase()
}

fn key_by_fingerprint(account: &Account, fp: &str) -> Result<PublicKey, Fail> {
    let want = normal_fp(fp);
    for r in account.associations()? {
        if normal_fp(&fingerprint(&r.key)?) == want {
            return Ok(r.key);
        }
    }
    // A key seen only on offline messages held for a decision.
    for k in held_in(account)? {
        if let Some(key) = k.untrusted
            && normal_fp(&fingerprint(&key)?) == want
        {
            return Ok(key);
        }
    }
    Err(Fail::new(
        Exit::Account,
        format!(
            "no known key has the fingerprint {fp}: give the contact's public key instead \
             (a PEM file, or `-` to paste it)"
        ),
    ))
}

/// The offline messages kept in the account's inbox that came with a key not trusted then
/// (held for a trust decision, [`Event::Untrusted`]), in the order they arrived.
fn held_in(account: &Account) -> Result<Vec<Kept>, Fail> {
    let inbox = account.inbox()?;
    Ok(inbox.held().map_err(Error::Store)?.into_iter().filter(|k| k.untrusted.is_some()).collect())
}

/// Those of the held messages that `contact` sent with `key`.
fn held_for(account: &Account, contact: &BareJid, key: &PublicKey) -> Result<Vec<Kept>, Fail> {
    Ok(held_in(account)?
        .into_iter()
        .filter(|k| k.untrusted.as_ref() == Some(key) && k.peer.to_bare() == *contact)
        .collect())
}

/// Prints the offline messages held for `key`, now trusted, and forgets each once printed (the
/// inbox's acknowledgement: shown once, here, never again by `receive` or `chat`).
fn show_released(s: &Settings, account: &Account, contact: &BareJid, key: &PublicKey) -> Result<(), Fail> {
    let held = held_for(account, contact, key)?;
    let mut inbox = account.inbox()?;
    for k in held {
        let body = k.stanza.get_child("body", "jabber:client").map(minidom::Element::text);
        if let Some(body) = body {
            if s.json {
                out!(
                    "{}",
                    serde_json::json!({"time": show::utc(), "event": "message", "peer": k.peer.as_str(),
                        "encrypted": true, "offline": true, "held": true, "body": body})
                );
            } else {
                out!("[{}] <{}> (sent while you were away, held until now) {body}", show::stamp(), k.peer);
            }
        }
        inbox.ack(&k.id).map_err(Error::Store)?;
    }
    Ok(())
}

/// A PEM public key from `text` (the first `-----BEGIN` block; text around it is ignored).
fn pem_in(text: &str) -> Option<PublicKey> {
    let start = text.find("-----BEGIN")?;
    let end_tag = text[start..].find("-----END")? + start;
    let end = text[end_tag + 8..].find("-----").map(|i| end_tag + 8 + i + 5)?;
    PublicKey::from_public_key_pem(&text[start..end]).ok()
}

/// One key of `trust list` / `trust show`: fingerprint, state in words, petname, JIDs; a key
/// pinned on first use (never compared) says so, with the command that verifies it.
fn key_line(r: &esession_negotiate::KeyRecord) -> Result<String, Fail> {
    let fp = fingerprint(&r.key)?;
    let state = match r.state() {
        KeyState::Verified => "verified",
        KeyState::Pinned => "pinned on first use, NOT verified",
        _ => "unverified",
    };
    let mut line = format!(
        "{fp}  {state}{}  {}",
        r.petname.as_ref().map(|p| format!(" \"{p}\"")).unwrap_or_default(),
        r.jids.iter().map(|j| j.as_str()).collect::<Vec<_>>().join(", ")
    );
    if r.state() == KeyState::Pinned {
        for j in &r.jids {
            line.push_str(&format!("\n    {j}: {}", show::pinned_words(j, &fp)));
        }
    }
    Ok(line)
}

fn bare_arg(what: &str, s: &str) -> Result<BareJid, Fail> {
    let j = parse_jid(s).map_err(|e| Fail::usage(format!("{what}: {e}")))?;
    if j.node().is_none() {
        return Err(Fail::usage(format!("{what}: {j} has no user part (user@domain)")));
    }
    Ok(j.to_bare())
}

/// What is known of our request to see `bare`'s presence, in words: the server's error for the
/// address (no such domain or account), or a request not approved yet, or approved.
pub(crate) fn subscription_words(client: &Client, bare: &BareJid) -> String {
    if let Some(c) = client.presence_error(bare) {
        return format!(
            "the server cannot reach {bare} ({c}): check the address (no such domain or account?)"
        );
    }
    if client.watches(bare) {
        return format!("{bare} shares its presence with you");
    }
    format!(
        "asked {bare} to share its presence with you: pending until {bare} approves (its presence is \
         unknown until then, not offline; if it never approves, check the address: a server may not \
         say that an account does not exist)"
    )
}

/// The one line for a failed delivery to `bare`, with what we know of its presence (`seen`: a
/// presence of it came).
pub(crate) fn explain(client: &Client, bare: &BareJid, seen: bool, e: Error) -> Fail {
    use esession_negotiate::Check;
    let contact = |m: String| Fail::new(Exit::Contact, m);
    // Not offline: an address the server cannot reach, or a request to see its presence that
    // is still pending.
    if matches!(e, Error::NotAvailable { .. } | Error::NoOfflineOptions { .. }) {
        if client.presence_error(bare).is_some() {
            return contact(subscription_words(client, bare));
        }
        if client.asked(bare) && !client.engine().is_available(bare) {
            return contact(format!(
                "you asked {bare} to share its presence and it has not approved yet \
                 (it may be online: you cannot know until it approves), and it has published no offline \
                 options you may use"
            ));
        }
    }
    // The roster read at login says whether we receive its presence.
    let seen = seen
        || client.watches(bare)
        || client.engine().subscribed_to(bare)
        || client.engine().is_available(bare);
    let said = |c: &Option<String>| {
        c.as_ref()
            .map(|c| format!(" (the server answered: {})", show::condition_words(c)))
            .unwrap_or_default()
    };
    match e {
        Error::NoOfflineOptions { condition, .. } if !seen => contact(format!(
            "no presence of {bare} has reached you (you may not be subscribed to it: `esession contact \
             add {bare}`, or /add in a chat, asks for it), and {bare} has published no offline options \
             you may use{}",
            said(&condition)
        )),
        Error::NotAvailable { .. } if !seen => contact(format!(
            "no presence of {bare} has reached you: you may not be subscribed to it (`esession contact \
             add {bare}`, or /add in a chat, asks for it), or it is offline"
        )),
        Error::NoOfflineOptions { condition, .. } => contact(format!(
            "{bare} is offline and has published no offline options you may use{}: try again when it \
             is online",
            said(&condition)
        )),
        Error::Offline(esession_offline::Error::Refused(esession_offline::Check::OptionsSignature)) => {
            contact(options_refused(client, bare))
        }
        Error::Negotiation(esession_negotiate::Error::PeerMisbehaved {
            check: Check::KeyTrust | Check::KeyUnknown,
            ..
        }) => contact(format!(
            "{bare} identified with a key you have not verified{}. {}",
            known_keys(client, bare),
            show::refused_key_hint(bare, show::refused_fingerprint(client.engine(), bare).as_deref())
        )),
        // A resource that does not announce XEP-0116: another client, or a one-shot esession
        // command (it accepts no negotiation, `login`).
        Error::NoSupport(j) => contact(format!(
            "{j} takes no encrypted session now (a client without them, or a one-shot esession command \
             that leaves at once): nothing was sent; try again when {bare} is in a chat (`esession chat`)"
        )),
        Error::Negotiation(esession_negotiate::Error::Rejected { condition, .. }) => {
            contact(session_refused(bare, condition.as_deref(), client))
        }
        // The client reports a peer's error answer to its request as the server's refusal.
        Error::Server { action, condition } if action == "the negotiation" => {
            contact(session_refused(bare, Some(&condition), client))
        }
        // The connection is lost (a server restarting, a network drop): the client said so at
        // once, and reconnects by itself.
        Error::Disconnected(Some(_)) => Fail::new(
            Exit::Network,
            "the connection to the server is lost (it is being restored by itself): nothing was sent; \
             type the line again once you are told it is back",
        ),
        // The answer was lost with the connection (a server restarting, a network drop): the
        // client reconnects by itself.
        Error::Timeout("server") => contact(
            "the server did not answer in time: the connection may have dropped (it is restored by \
             itself); nothing was sent, type the line again in a moment"
                .to_owned(),
        ),
        Error::Server { action, condition } => Fail::new(
            Exit::Server,
            format!("the server refused {action}: {}", show::condition_words(&condition)),
        ),
        e => e.into(),
    }
}

/// A negotiation answered with an error, in words: a delivery error (no client there to
/// negotiate with) is not a refusal; a refusal says what may be missing (our key, verified).
fn session_refused(bare: &BareJid, condition: Option<&str>, client: &Client) -> String {
    let mine = show::my_fingerprint(client.engine());
    refused_words(bare, condition, mine.as_deref(), &client.jid().to_bare())
}

/// [`session_refused`] without the client: `mine` is our key's fingerprint, `me` our JID.
fn refused_words(bare: &BareJid, condition: Option<&str>, mine: Option<&str>, me: &BareJid) -> String {
    match condition {
        Some(c) if show::undelivered(c) => {
            format!("no session with {bare} could be started: {}; nothing was sent", show::condition_words(c))
        }
        _ => format!(
            "{bare} refused the session: {}; {}",
            condition.map_or_else(|| "no reason given".to_owned(), show::condition_words),
            show::refused_hint(bare, mine, Some(me))
        ),
    }
}

/// `; the key you have for JID is FP` (or the keys), when some are known.
fn known_keys(client: &Client, bare: &BareJid) -> String {
    let fps: Vec<String> =
        client.engine().trust().for_jid(bare).iter().filter_map(|r| fingerprint(&r.key).ok()).collect();
    match fps.as_slice() {
        [] => format!(" (you have no key of {bare} yet)"),
        [one] => format!(" (the key you have for {bare} is {one}: it may have a new one)"),
        _ => format!(" (the keys you have for {bare} are {}: it may have a new one)", fps.join(", ")),
    }
}

/// Offline options that no key we trust for `bare` signed, in words: nothing was sent, the
/// options name no key (XEP-0187 publishes signatures only), so the fingerprint to compare is
/// the one `bare` reads out, and one command trusts its key.
pub(crate) fn options_refused(client: &Client, bare: &BareJid) -> String {
    format!(
        "{bare} is offline, and its offline options are not signed by a key you \
         trust for {bare}{} (the options carry signatures, not the key itself, so its fingerprint \
         cannot be shown here). {}",
        known_keys(client, bare),
        show::untrusted_key_hint(bare)
    )
}

/// Answers an IQ request the engine left to us: a roster push with a result (RFC 6121 §2.1.6),
/// anything else with `service-unavailable`.
pub(crate) async fn answer_iq(client: &mut Client, stanza: &minidom::Element) {
    let roster = stanza.get_child("query", "jabber:iq:roster").is_some();
    let reply = if roster && stanza.attr("type") == Some("set") {
        let mut r = minidom::Element::bare("iq", "jabber:client");
        set(&mut r, "type", "result");
        if let Some(v) = stanza.attr("id") {
            set(&mut r, "id", v);
        }
        if let Some(v) = stanza.attr("from") {
            set(&mut r, "to", v);
        }
        r
    } else {
        esession_xmpp::engine::iq_error(stanza, "service-unavailable")
    };
    let _ = client.send_clear(reply).await;
}

/// A roster push, in words (what the server now records about a contact).
pub(crate) fn roster_push(stanza: &minidom::Element) -> Option<String> {
    let item = stanza.get_child("query", "jabber:iq:roster")?.get_child("item", "jabber:iq:roster")?;
    let jid = item.attr("jid")?;
    let sub = match item.attr("subscription").unwrap_or("none") {
        "both" => "you see each other's presence",
        "to" => "you see its presence",
        "from" => "it sees your presence",
        "remove" => "removed from your contacts",
        _ => "no presence shared",
    };
    let ask = if item.attr("ask") == Some("subscribe") { "; your request is pending" } else { "" };
    Some(format!("* contact {jid}: {sub}{ask}"))
}

async fn run(s: &Settings, cmd: AccountCmd) -> Result<(), Fail> {
    match cmd {
        AccountCmd::Keygen { dsa, bits, force } => {
            let opened = open_write(s, true)?;
            if !force && opened.account.identity()?.is_some() {
                return Err(Fail::new(
                    Exit::Account,
                    "an identity key exists already (`esession fingerprint` shows it; --force replaces it)",
                ));
            }
            let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
            let key = if dsa {
                PrivateKey::generate_dsa(&mut rng)
            } else {
                PrivateKey::generate_rsa(&mut rng, bits)
            }
            .map_err(|e| Fail::usage(format!("key generation: {e}")))?;
            opened.account.set_identity(&key, force)?;
            keep_public(&s.dir()?, &opened.account, true)?;
            out!("identity key: {}", fingerprint(&key.public_key())?);
        }
        AccountCmd::Fingerprint { pem, sealed } => {
            let no_key = || Fail::new(Exit::Account, "no identity key: run `esession keygen`");
            let dir = s.dir()?;
            // The sealed identity whenever it can be read without asking (a key file, or the
            // passphrase given) or `--sealed` asks for it; else the public key kept apart,
            // unsealed, and that is said. An account of an earlier version, sealed with a
            // passphrase and with no copy yet, needs the passphrase, and the prompt says why.
            // A key given to contacts (`--pem`) always comes from the sealed identity: whoever
            // can write the data directory could have planted another in the copy.
            let copy = if sealed || pem.is_some() || s.passphrase.is_some() || !passphrase_account(&dir) {
                None
            } else {
                kept_public(&dir).filter(|_| dir.join(DB).exists())
            };
            let public = match copy {
                Some(k) => {
                    eprintln!(
                        "esession: read from {}, the unsealed copy of your public key (`esession \
                         fingerprint --sealed` reads the sealed key, with the passphrase)",
                        dir.join(PUBLIC).display()
                    );
                    k
                }
                None => {
                    if !sealed && pem.is_none() && s.passphrase.is_none() && passphrase_account(&dir) {
                        eprintln!(
                            "esession: this account's identity key is sealed with its passphrase, and its public \
                             key is not kept apart yet (an account of an earlier version): the passphrase is \
                             needed to read it (a command that logs in keeps it apart, after which it is not \
                             asked here)"
                        );
                    }
                    let opened = open_read(s)?.ok_or_else(no_key)?;
                    opened.account.identity()?.ok_or_else(no_key)?.public_key()
                }
            };
            out!("{}", fingerprint(&public)?);
            if let Some(path) = pem {
                let text = public.to_public_key_pem().map_err(|e| Fail::new(Exit::Failure, e.to_string()))?;
                if path.as_os_str() == "-" {
                    use std::io::Write as _;
                    let _ = write!(std::io::stdout(), "{text}");
                } else {
                    std::fs::write(&path, text)
                        .map_err(|e| Fail::new(Exit::Failure, format!("{}: {e}", path.display())))?;
                    // Said where (standard output carries the fingerprint only).
                    let shown = std::fs::canonicalize(&path).unwrap_or(path);
                    let me =
                        s.jid.as_ref().map_or_else(|| "YOUR-JID".to_owned(), |j| j.to_bare().to_string());
                    use std::io::Write as _;
                    let _ = writeln!(
                        std::io::stderr(),
                        "esession: the public key was written to {} (a contact trusts it with `esession trust \
                         verify {me} FILE`, after comparing the fingerprint above with you)",
                        shown.display()
                    );
                }
            }
        }
        AccountCmd::Trust(TrustCmd::List) => {
            let records = match open_read(s)? {
                Some(opened) => opened.account.associations()?,
                None => Vec::new(),
            };
            if records.is_empty() {
                out!(
                    "no trusted keys: none known yet (`esession trust verify JID KEY.pem` trusts a contact's \
                     key after you compared its fingerprint)"
                );
            }
            for r in records {
                out!("{}", key_line(&r)?);
            }
        }
        AccountCmd::Trust(TrustCmd::Show { contact }) => {
            let contact = bare_arg("contact", &contact)?;
            let opened = open_read(s)?;
            let records = match &opened {
                Some(o) => o.account.associations()?,
                None => Vec::new(),
            };
            let mine: Vec<_> = records.iter().filter(|r| r.jids.contains(&contact)).collect();
            // Keys seen only on offline messages held for a decision.
            let mut held: Vec<(PublicKey, usize)> = Vec::new();
            if let Some(o) = &opened {
                for k in held_in(&o.account)? {
                    let Some(key) = k.untrusted.filter(|_| k.peer.to_bare() == contact) else { continue };
                    if mine.iter().any(|r| r.key == key) {
                        continue;
                    }
                    match held.iter_mut().find(|(h, _)| *h == key) {
                        Some((_, n)) => *n += 1,
                        None => held.push((key, 1)),
                    }
                }
            }
            if mine.is_empty() && held.is_empty() {
                out!("no key known for {contact}: {}", show::untrusted_key_hint(&contact));
            }
            for r in mine {
                out!("{}", key_line(r)?);
            }
            for (key, n) in held {
                let fp = fingerprint(&key)?;
                out!(
                    "{fp}  NOT trusted: {n} offline message(s) held  {contact}  (compare it with {contact}, then \
                     `esession trust verify {contact} {}` shows them)",
                    normal_fp(&fp)
                );
            }
        }
        AccountCmd::Trust(TrustCmd::Verify { contact, key }) => {
            let contact = bare_arg("contact", &contact)?;
            let opened = open_write(s, false)?;
            let public = if key == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .take(64 << 10)
                    .read_to_string(&mut text)
                    .map_err(|e| Fail::usage(format!("standard input: {e}")))?;
                pem_in(&text).ok_or_else(|| Fail::usage("standard input: no PEM public key (RSA or DSA)"))?
            } else if Path::new(&key).exists() {
                let text = std::fs::read_to_string(&key).map_err(|e| Fail::usage(format!("{key}: {e}")))?;
                pem_in(&text)
                    .ok_or_else(|| Fail::usage(format!("{key}: not a PEM public key (RSA or DSA)")))?
            } else if key.chars().any(|c| !c.is_ascii_hexdigit() && !c.is_whitespace() && c != ':') {
                // Not a fingerprint (hex digits): a file name that names no file.
                return Err(Fail::usage(format!(
                    "{key}: no such file (and not a fingerprint, which is hex digits)"
                )));
            } else {
                key_by_fingerprint(&opened.account, &key)?
            };
            opened.account.trust(&contact, public.clone())?;
            out!("trusted for {contact}: {} (verified)", fingerprint(&public)?);
            // What was held for this key can be read now.
            show_released(s, &opened.account, &contact, &public)?;
        }
        AccountCmd::Trust(TrustCmd::Refuse { contact, fingerprint: fp }) => {
            let contact = bare_arg("contact", &contact)?;
            let opened = open_write(s, false)?;
            let want = normal_fp(&fp);
            let mut inbox = opened.account.inbox()?;
            let mut dropped = 0;
            for k in held_in(&opened.account)? {
                let key = k.untrusted.as_ref().map(fingerprint).transpose()?.map(|f| normal_fp(&f));
                if k.peer.to_bare() == contact && key.as_deref() == Some(want.as_str()) {
                    inbox.ack(&k.id).map_err(Error::Store)?;
                    dropped += 1;
                }
            }
            if dropped == 0 {
                return Err(Fail::new(
                    Exit::Account,
                    format!("no offline message of {contact} is held for the key {fp}"),
                ));
            }
            out!("dropped {dropped} offline message(s) of {contact} held for the key {fp}, unread");
        }
        AccountCmd::Trust(TrustCmd::Untrust { contact, fingerprint: fp }) => {
            let contact = bare_arg("contact", &contact)?;
            let opened = open_write(s, false)?;
            let keys: Vec<PublicKey> = opened
                .account
                .associations()?
                .into_iter()
                .filter(|r| r.jids.contains(&contact))
                .map(|r| r.key)
                .collect();
            let key = match (fp, keys.len()) {
                (Some(fp), _) => key_by_fingerprint(&opened.account, &fp)?,
                (None, 0) => return Err(Fail::new(Exit::Account, format!("no key is known for {contact}"))),
                (None, 1) => keys[0].clone(),
                (None, _) => {
                    return Err(Fail::usage(format!(
                        "{contact} has several keys: name one by its fingerprint (`esession trust show {contact}`)"
                    )));
                }
            };
            opened.account.untrust(&contact, &key)?;
            out!("no longer trusted for {contact}: {}", fingerprint(&key)?);
        }
        AccountCmd::Trust(TrustCmd::Petname { fingerprint: fp, name }) => {
            let opened = open_write(s, false)?;
            let key = key_by_fingerprint(&opened.account, &fp)?;
            opened.account.set_petname(&key, &name)?;
            out!("{} is now \"{name}\"", fingerprint(&key)?);
        }
        AccountCmd::Contact(c) => contact(s, c).await?,
        AccountCmd::Send { peer, text } => {
            let peer = parse_jid(&peer).map_err(|e| Fail::usage(e.to_string()))?;
            // An empty text would go out as a stanza without a body, which the contact sees as
            // nothing at all while this command said "sent".
            if text.is_empty() {
                return Err(Fail::usage("nothing to send: the text is empty"));
            }
            with_client(s, async |client| send(client, &peer, &text).await).await?;
        }
        AccountCmd::Offline(OfflineCmd::Publish) => {
            with_client(s, async |client| {
                let fp = client
                    .engine()
                    .config()
                    .identity
                    .as_ref()
                    .and_then(|k| fingerprint(&k.public_key()).ok())
                    .ok_or_else(|| {
                        Fail::new(
                            Exit::Account,
                            "offline options need an identity key: run `esession keygen`",
                        )
                    })?;
                // Sessions end, the options go up; the stream closes after it.
                client.publish_offline().await?;
                Ok(fp)
            })
            .await
            .map(|fp| {
                out!(
                    "offline options published; you are offline. Contacts who verified your key ({fp}) can \
                     send you offline messages; `esession receive` reads them"
                )
            })?;
        }
        AccountCmd::Offline(OfflineCmd::Withdraw) => {
            with_client(s, async |client| Ok(client.withdraw_offline().await?)).await?;
            out!("offline options withdrawn");
        }
        AccountCmd::Receive { wait } => {
            with_client(s, async |client| receive(s, client, wait).await).await?;
        }
        AccountCmd::Chat { peer } => {
            let peer = parse_jid(&peer).map_err(|e| Fail::usage(e.to_string()))?;
            // The chat reads its own signals (and Ctrl-C from its line editor); it stays, so
            // contacts may negotiate with it.
            with_client_signals(s, false, true, async |client| crate::chat::run(s, client, peer).await)
                .await?;
        }
    }
    Ok(())
}

/// `send PEER TEXT` on a logged-in client.
async fn send(client: &mut Client, peer: &Jid, text: &str) -> Result<(), Fail> {
    let bare = peer.to_bare();
    let seen_early = wait_presence(client, &bare).await;
    match client.send_text(peer, text).await {
        Ok(Delivery::Online { sas }) => {
            let key = show::key_words(&bare, show::session_key(client.engine(), &bare));
            out!(
                "sent to {bare} in an encrypted session{}{key}",
                sas.map(|s| format!(" (SAS {s})")).unwrap_or_default()
            );
            // End the session cleanly; an absent acknowledgement is not an error here.
            let _ = tokio::time::timeout(Duration::from_secs(3), client.terminate(&bare)).await;
        }
        Ok(Delivery::Offline) => {
            out!("{bare} is offline: sent in an offline session (it reads it when back)")
        }
        Ok(_) => out!("sent to {bare}"),
        Err(e) => {
            // A presence of the contact still queued tells that we are subscribed to it.
            let b = bare.clone();
            let seen = tokio::time::timeout(
                Duration::ZERO,
                client.wait_for(|e| matches!(e, Event::Presence { peer, .. } if peer.to_bare() == b)),
            )
            .await
            .is_ok_and(|r| r.is_ok());
            return Err(explain(client, &bare, seen || seen_early, e));
        }
    }
    Ok(())
}

/// `receive`: what comes within `wait` seconds, each offline message acknowledged once printed.
async fn receive(s: &Settings, client: &mut Client, wait: u64) -> Result<(), Fail> {
    let until = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let e = match tokio::time::timeout_at(until, client.next_event()).await {
            Err(_) => break,
            Ok(e) => e?,
        };
        if let Event::Iq { stanza } = &e {
            answer_iq(client, stanza).await;
            continue;
        }
        print_event(s, client, &e);
        // Printed: the offline message is done with (until then every `receive` shows
        // it again: nothing is lost when this process dies before this line).
        if let Event::Message { id: Some(id), .. } = &e {
            client.ack(id)?;
        }
    }
    Ok(())
}

/// Logs in, runs `body` on the client, and leaves cleanly whatever happened: the sessions end,
/// unavailable presence and the stream's end go out, so that no resource stays behind for
/// stream management to keep (a "ghost" contacts would negotiate with). A SIGINT, SIGTERM or
/// SIGHUP while `body` runs ends it the same way (the command then fails). The resource of a
/// one-shot command accepts no negotiation while it runs (contacts' requests are declined,
/// XEP-0155 §4.3; see [`login`]): it is about to vanish.
pub(crate) async fn with_client<T>(
    s: &Settings,
    body: impl AsyncFnOnce(&mut Client) -> Result<T, Fail>,
) -> Result<T, Fail> {
    with_client_signals(s, true, false, body).await
}

/// [`with_client`]; `signals`: whether a signal ends `body` (false: `body` reads them itself);
/// `accepting`: whether contacts may negotiate with this resource (the chat).
pub(crate) async fn with_client_signals<T>(
    s: &Settings,
    signals: bool,
    accepting: bool,
    body: impl AsyncFnOnce(&mut Client) -> Result<T, Fail>,
) -> Result<T, Fail> {
    let interrupted =
        || Fail::new(Exit::Failure, "interrupted: left the server cleanly, nothing more was done");
    let mut caught = crate::chat::Signals::new(signals);
    // A signal during the login: nothing to close yet but what the login opened.
    let mut client = tokio::select! {
        c = login(s, accepting) => c?,
        () = caught.any() => return Err(Fail::new(Exit::Failure, "interrupted during the login")),
    };
    let r = tokio::select! {
        r = body(&mut client) => r,
        () = caught.any() => Err(interrupted()),
    };
    // Bounded: a server that does not answer must not keep the command (the signals stay
    // caught until the process ends).
    let closed = tokio::time::timeout(CLOSE, client.disconnect()).await;
    match (r, closed) {
        (Ok(v), Ok(Ok(()))) => Ok(v),
        (Ok(_), Ok(Err(e))) => Err(e.into()),
        (Ok(_), Err(_)) => Err(Fail::new(Exit::Network, "the server did not let the stream close in time")),
        (Err(f), _) => Err(f),
    }
}

/// How long leaving the server (terminates, unavailable presence, the stream's end) may take.
const CLOSE: Duration = Duration::from_secs(5);

/// Waits a moment for a presence of `bare` when none has come yet: a server may answer the
/// presence probes of the login after the ping that ends it (ejabberd does). Returns whether one
/// came (it is processed: the contact's resources are known).
pub(crate) async fn wait_presence(client: &mut Client, bare: &BareJid) -> bool {
    if client.engine().is_available(bare) {
        return true;
    }
    let b = bare.clone();
    tokio::time::timeout(
        Duration::from_millis(1500),
        client.wait_for(|e| matches!(e, Event::Presence { peer, .. } if peer.to_bare() == b)),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}

/// Prints an event of a one-shot command (stamped words, or JSON).
fn print_event(s: &Settings, client: &Client, e: &Event) {
    if s.json {
        if let Some(v) = show::json(client.engine(), e) {
            out!("{v}");
        }
    } else if let Some(t) = show::text(client.engine(), e, Place::Command) {
        for l in t.lines() {
            out!("[{}] {l}", show::stamp());
        }
    }
}

/// A presence stanza of `kind` to `to`.
pub(crate) fn presence(to: &BareJid, kind: &str) -> minidom::Element {
    let mut p = minidom::Element::bare("presence", "jabber:client");
    set(&mut p, "to", to.as_str());
    set(&mut p, "type", kind);
    p
}

/// Sets an attribute (our names are fixed ASCII names: they always parse).
fn set(e: &mut minidom::Element, name: &str, value: &str) {
    if let Ok(n) = esession_forms::xml::attr_name(name) {
        e.set_attr(minidom::rxml::Namespace::NONE, n, value.to_owned());
    }
}

/// Asks to see `bare`'s presence. No pre-approval of its own request (RFC 6121 §3.4): Prosody
/// 0.12 records one without telling the contact's side, which then waits forever; the contact's
/// request comes to us instead, to approve like any other.
pub(crate) async fn add(client: &mut Client, bare: &BareJid) -> Result<(), Error> {
    client.subscribe(bare).await
}

/// The roster removal of `bare` (RFC 6121 §2.5), fire and forget: the client keeps the answer.
fn roster_remove(bare: &BareJid) -> minidom::Element {
    let mut item = minidom::Element::bare("item", "jabber:iq:roster");
    set(&mut item, "jid", bare.as_str());
    set(&mut item, "subscription", "remove");
    let query = minidom::Element::builder("query", "jabber:iq:roster").append(item).build();
    let mut tag = [0u8; 6];
    rand_core::Rng::fill_bytes(&mut getrandom::rand_core::UnwrapErr(getrandom::SysRng), &mut tag);
    let mut iq = minidom::Element::builder("iq", "jabber:client").append(query).build();
    set(&mut iq, "type", "set");
    set(&mut iq, "id", &format!("roster-{}", hex::encode(tag)));
    iq
}

async fn contact(s: &Settings, c: ContactCmd) -> Result<(), Fail> {
    let target = match &c {
        ContactCmd::Add { contact }
        | ContactCmd::Approve { contact }
        | ContactCmd::Deny { contact }
        | ContactCmd::Remove { contact } => Some(bare_arg("contact", contact)?),
        ContactCmd::List { .. } => None,
    };
    with_client(s, async |client| contact_on(s, client, &c, target.as_ref()).await).await
}

/// A `contact` command on a logged-in client.
async fn contact_on(
    s: &Settings,
    client: &mut Client,
    c: &ContactCmd,
    target: Option<&BareJid>,
) -> Result<(), Fail> {
    let me = client.jid().to_bare();
    if target == Some(&me) {
        return Err(Fail::usage("that is your own account"));
    }
    let said = match (c, target) {
        (ContactCmd::Add { .. }, Some(b)) => {
            add(client, b).await?;
            // Told below, once the server had a moment to answer for the address.
            String::new()
        }
        (ContactCmd::Approve { .. }, Some(b)) => {
            client.approve(b).await?;
            client.subscribe(b).await?;
            format!("{b} may now see your presence; asked to see its presence too")
        }
        (ContactCmd::Deny { .. }, Some(b)) => {
            client.send_clear(presence(b, "unsubscribed")).await?;
            format!("refused {b}'s request to see your presence")
        }
        (ContactCmd::Remove { .. }, Some(b)) => {
            // Nothing to remove (a mistyped address): said, nothing sent.
            if client.in_roster(b) == Some(false) {
                return Err(Fail::new(
                    Exit::Contact,
                    format!(
                        "{b} is not in your contact list: nothing was removed (check the address; \
                         `esession contact list` shows your contacts)"
                    ),
                ));
            }
            client.send_clear(presence(b, "unsubscribe")).await?;
            client.send_clear(presence(b, "unsubscribed")).await?;
            client.send_clear(roster_remove(b)).await?;
            format!("{b} no longer shares presence with you either way, and is removed from your contacts")
        }
        (ContactCmd::List { wait }, _) => {
            list(s, client, *wait).await?;
            String::new()
        }
        _ => String::new(),
    };
    // Let the server act before the stream closes.
    let _ = client.settle().await;
    let mut said = said;
    if let (ContactCmd::Add { .. }, Some(b)) = (c, target) {
        if client.presence_error(b).is_some() {
            return Err(Fail::new(Exit::Contact, subscription_words(client, b)));
        }
        said = format!(
            "{}; {b} approves with `esession contact approve {me}`, which also asks for yours; approve \
             that with `esession contact approve {b}`",
            subscription_words(client, b)
        );
    }
    if !said.is_empty() {
        if s.json {
            out!("{}", show::note("contact", &said, serde_json::json!({})));
        } else {
            out!("{said}");
        }
    }
    Ok(())
}

/// `contact list`: what presence tells within `wait` seconds.
async fn list(s: &Settings, client: &mut Client, wait: u64) -> Result<(), Fail> {
    use std::collections::BTreeMap;
    // bare -> available resources (empty: offline)
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut asking: Vec<String> = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        let e = match tokio::time::timeout_at(until, client.next_event()).await {
            Err(_) => break,
            Ok(e) => e?,
        };
        match e {
            Event::Presence { peer, available } => {
                let r = seen.entry(peer.to_bare().to_string()).or_default();
                let res = peer.resource().map(|r| r.as_str().to_owned()).unwrap_or_default();
                r.retain(|x| *x != res);
                if available {
                    r.push(res);
                }
            }
            Event::SubscriptionRequest { peer } => asking.push(peer.to_string()),
            Event::Iq { stanza } => answer_iq(client, &stanza).await,
            other => print_event(s, client, &other),
        }
    }
    // The roster's contacts whose presence we receive and who said nothing: offline (a server
    // need not answer the probe of an offline contact; ejabberd does not).
    for b in client.watched() {
        seen.entry(b.to_string()).or_default();
    }
    // Those we asked, who have not approved yet (ejabberd sends nothing of them).
    for b in client.pending_requests() {
        seen.entry(b.to_string()).or_default();
    }
    let trust = client.engine().trust();
    let keys = |bare: &str| -> (usize, KeyState) {
        let Ok(b) = parse_bare(bare) else { return (0, KeyState::Unverified) };
        let rs = trust.for_jid(&b);
        let state = if rs.iter().any(|r| r.verified) {
            KeyState::Verified
        } else if rs.iter().any(|r| r.pinned) {
            KeyState::Pinned
        } else {
            KeyState::Unverified
        };
        (rs.len(), state)
    };
    for (bare, resources) in &seen {
        let (n, state) = keys(bare);
        let verified = state == KeyState::Verified;
        let key = match (n, state) {
            (0, _) => "no key known",
            (_, KeyState::Verified) => "key verified",
            (_, KeyState::Pinned) => "key pinned on first use, not verified",
            _ => "key not verified",
        };
        let b = parse_bare(bare).ok();
        let error = b.as_ref().and_then(|b| client.presence_error(b)).filter(|_| resources.is_empty());
        let pending = b.as_ref().is_some_and(|b| client.asked(b)) && resources.is_empty();
        if s.json {
            out!(
                "{}",
                serde_json::json!({"time": show::utc(), "event": "contact", "jid": bare, "online": !resources.is_empty(),
                    "resources": resources, "keys": n, "verified": verified,
                    "pinned": state == KeyState::Pinned, "pending": pending, "error": error})
            );
        } else if let Some(c) = error {
            out!("{bare}  not found: the server cannot reach it ({c}; no such domain or account?)");
        } else if pending {
            out!("{bare}  asked, not approved yet (its presence is unknown until it approves)  ({key})");
        } else if resources.is_empty() {
            out!("{bare}  offline  ({key})");
        } else {
            out!("{bare}  online: {}  ({key})", resources.join(", "));
        }
    }
    for a in &asking {
        if s.json {
            out!("{}", serde_json::json!({"time": show::utc(), "event": "subscription-request", "peer": a}));
        } else {
            out!("{a}  asks to see your presence: `esession contact approve {a}`");
        }
    }
    if seen.is_empty() && asking.is_empty() && !s.json {
        out!("no contact shares its presence with you yet (`esession contact add JID` asks one)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// New-user trial: lines reported NOT SENT quoted the server's raw condition (`(the server
    /// said item-not-found)`, `refused the session (service-unavailable)`). They say what
    /// happened and what to do, the condition in parentheses; a delivery error is not a refusal.
    #[test]
    fn not_sent_lines_say_the_server_condition_in_words() {
        let bob = parse_bare("bob@example.com").unwrap();
        let me = parse_bare("alice@example.org").unwrap();
        let t = refused_words(&bob, Some("service-unavailable"), None, &me);
        assert!(
            t.starts_with("no session with bob@example.com could be started: the contact's client"),
            "{t}"
        );
        assert!(t.contains("(service-unavailable)") && !t.contains("refused"), "{t}");
        let t = refused_words(&bob, Some("not-acceptable"), Some("AB12"), &me);
        assert!(t.contains("refused the session: the contact's client did not accept"), "{t}");
        assert!(
            t.contains("(not-acceptable)") && t.contains("esession trust verify alice@example.org"),
            "{t}"
        );
        for c in ["item-not-found", "service-unavailable", "remote-server-not-found", "recipient-unavailable"]
        {
            let w = show::condition_words(c);
            assert!(w.ends_with(&format!(" ({c})")) && w.len() > c.len() + 20, "{w}");
        }
        // An unknown condition is kept as it is (no words invented).
        assert_eq!(show::condition_words("x-unknown"), "x-unknown");
    }
}
