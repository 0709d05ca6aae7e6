//! The account commands: keys, trust, chat, send, offline options, receive.
//!
//! Every command opens the account's data directory (`--data`, default
//! `$XDG_DATA_HOME/esession/JID` or `~/.local/share/esession/JID`); the commands that talk to a
//! server log in with `--jid`, `--password` (or `ESESSION_PASSWORD`) and `--server host:port`,
//! which may also come from a config file (`--config FILE`, lines `key = value`). Errors are one
//! line on stderr and exit status 1.

use clap::{Args, Subcommand};
use esession_crypto::{PrivateKey, Profile, PublicKey};
use esession_negotiate::Mode;
use esession_xmpp::{
    Account, Client, Delivery, Error, Event, Options, Sealing, Tls, fingerprint, parse_bare, parse_jid,
};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Options shared by the account commands.
#[derive(Args, Debug, Default)]
pub(crate) struct Common {
    /// The account's JID (user@domain).
    #[arg(long, global = true)]
    jid: Option<String>,
    /// The account's password (better: the ESESSION_PASSWORD environment variable).
    #[arg(long, global = true, env = "ESESSION_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// The server as host:port.
    #[arg(long, global = true)]
    server: Option<String>,
    /// The account's data directory.
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    /// Seal stored secrets with a key derived from this passphrase (or ESESSION_PASSPHRASE);
    /// without it, a random key kept in DATA/seal.key.
    #[arg(long, global = true, env = "ESESSION_PASSPHRASE", hide_env_values = true)]
    passphrase: Option<String>,
    /// A file of `key = value` lines (jid, password, server, data).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Use STARTTLS (needed for any server that is not on loopback).
    #[arg(long, global = true)]
    starttls: bool,
    /// The wire profile: xep (the specifications) or gajim (the deployed dialect).
    #[arg(long, global = true, default_value = "xep")]
    profile: String,
    /// Seconds to wait for the server or a contact.
    #[arg(long, global = true, default_value_t = 20)]
    timeout: u64,
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
    /// Print the identity key's fingerprint (and, with --pem FILE, write its public key).
    Fingerprint {
        /// Write the public key (SPKI PEM) here, for a contact to verify.
        #[arg(long)]
        pem: Option<PathBuf>,
    },
    /// Key associations.
    #[command(subcommand)]
    Trust(TrustCmd),
    /// Chat with PEER interactively (lines you type are sent; /rekey, /verify, /quit).
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
    /// Trust a contact's key: a PEM public key file, or the fingerprint of a key already seen.
    Verify {
        /// The contact's JID.
        contact: String,
        /// A PEM file, or a fingerprint as `trust list` shows it.
        key: String,
    },
    /// Give a known key a petname.
    Petname {
        /// The key's fingerprint.
        fingerprint: String,
        /// The name.
        name: String,
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

fn config_file(c: &mut Common) -> Result<(), Error> {
    let Some(path) = &c.config else { return Ok(()) };
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(Error::Config(format!("{}:{}: expected key = value", path.display(), n + 1)));
        };
        let v = v.trim().trim_matches('"').to_owned();
        match k.trim() {
            "jid" => c.jid = c.jid.take().or(Some(v)),
            "password" => c.password = c.password.take().or(Some(v)),
            "server" => c.server = c.server.take().or(Some(v)),
            "data" => c.data = c.data.take().or(Some(PathBuf::from(v))),
            other => return Err(Error::Config(format!("{}:{}: unknown key {other}", path.display(), n + 1))),
        }
    }
    Ok(())
}

fn need<'a>(v: &'a Option<String>, what: &str) -> Result<&'a str, Error> {
    v.as_deref().ok_or_else(|| Error::Config(format!("--{what} is needed (or `{what} = ...` in --config)")))
}

fn open_account(c: &Common) -> Result<Account, Error> {
    let dir = match &c.data {
        Some(d) => d.clone(),
        None => {
            let jid = need(&c.jid, "jid")?;
            let base = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("share")));
            base.ok_or_else(|| Error::Config("--data is needed (no HOME)".into()))?
                .join("esession")
                .join(parse_bare(jid)?.as_str())
        }
    };
    let sealing = match &c.passphrase {
        Some(p) => Sealing::Passphrase(zeroize::Zeroizing::new(p.clone())),
        None => Sealing::KeyFile,
    };
    Account::open(&dir, sealing)
}

async fn connect(c: &Common) -> Result<Client, Error> {
    let account = open_account(c)?;
    let mut o =
        Options::new(need(&c.jid, "jid")?, need(&c.password, "password")?, need(&c.server, "server")?);
    o.tls = if c.starttls { Tls::StartTls } else { Tls::PlainLoopbackOnly };
    o.profile = match c.profile.as_str() {
        "xep" => Profile::Xep,
        "gajim" => Profile::Gajim,
        other => return Err(Error::Config(format!("--profile: xep or gajim, not {other}"))),
    };
    o.timeout = Duration::from_secs(c.timeout);
    let mut client = Client::connect(o, account).await?;
    client.settle().await?;
    Ok(client)
}

/// Runs one account command.
pub(crate) fn main(mut common: Common, cmd: AccountCmd) -> ExitCode {
    let r = config_file(&mut common).and_then(|()| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        rt.block_on(run(&common, cmd))
    });
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("esession: {e}");
            ExitCode::from(1)
        }
    }
}

fn print_event(e: &Event) {
    match e {
        Event::Negotiated { peer, sas: Some(sas), .. } => {
            println!("* encrypted session with {peer}; SAS {sas}: compare it with {peer}, then /verify");
        }
        Event::Negotiated { peer, offline: true, .. } => println!("* offline session from {peer}"),
        Event::Negotiated { peer, .. } => println!("* encrypted session with {peer}"),
        Event::Message { peer, .. } => {
            if let Some(b) = e.body() {
                println!("<{peer}> {b}");
            }
        }
        Event::Alert { peer, alert } => println!("!! {peer}: {alert}"),
        Event::Terminated { peer, .. } => println!("* session with {peer} ended"),
        Event::Failed { peer, failure } => println!("!! {peer}: {}: {failure}", failure.condition()),
        Event::SubscriptionRequest { peer } => println!("* {peer} asks to see your presence"),
        Event::Unprotected { peer, elements } => {
            // A server's delivery stamp (XEP-0203) on a stored message is expected.
            let odd: Vec<&str> =
                elements.iter().map(String::as_str).filter(|e| *e != "{urn:xmpp:delay}delay").collect();
            if !odd.is_empty() {
                println!(
                    "!! {peer}: dropped what came in clear beside an encrypted message ({}): not from the session",
                    odd.join(", ")
                );
            }
        }
        Event::Clear { peer, .. } => {
            if let Some(b) = e.body() {
                println!("<{peer}> (NOT ENCRYPTED) {b}");
            }
        }
        _ => {}
    }
}

fn key_by_fingerprint(account: &Account, fp: &str) -> Result<PublicKey, Error> {
    let want: String = fp.chars().filter(char::is_ascii_hexdigit).collect::<String>().to_uppercase();
    for r in account.associations()? {
        let have: String = fingerprint(&r.key)?.chars().filter(|c| *c != ' ').collect();
        if have == want {
            return Ok(r.key);
        }
    }
    Err(Error::Config(format!("no known key has the fingerprint {fp}")))
}

async fn run(c: &Common, cmd: AccountCmd) -> Result<(), Error> {
    match cmd {
        AccountCmd::Keygen { dsa, bits, force } => {
            let account = open_account(c)?;
            let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
            let key = if dsa {
                PrivateKey::generate_dsa(&mut rng)
            } else {
                PrivateKey::generate_rsa(&mut rng, bits)
            }
            .map_err(|e| Error::Config(format!("key generation: {e}")))?;
            account.set_identity(&key, force)?;
            println!("identity key: {}", fingerprint(&key.public_key())?);
        }
        AccountCmd::Fingerprint { pem } => {
            let account = open_account(c)?;
            let key = account
                .identity()?
                .ok_or_else(|| Error::Config("no identity key: run `esession keygen`".into()))?;
            let public = key.public_key();
            println!("{}", fingerprint(&public)?);
            if let Some(path) = pem {
                let text = public.to_public_key_pem().map_err(|e| Error::Config(e.to_string()))?;
                std::fs::write(&path, text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            }
        }
        AccountCmd::Trust(TrustCmd::List) => {
            let account = open_account(c)?;
            for r in account.associations()? {
                println!(
                    "{}  {}{}  {}",
                    fingerprint(&r.key)?,
                    if r.verified { "verified" } else { "unverified" },
                    r.petname.map(|p| format!(" \"{p}\"")).unwrap_or_default(),
                    r.jids.iter().map(|j| j.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
        }
        AccountCmd::Trust(TrustCmd::Verify { contact, key }) => {
            let account = open_account(c)?;
            let public = if std::path::Path::new(&key).exists() {
                let text = std::fs::read_to_string(&key).map_err(|e| Error::Config(format!("{key}: {e}")))?;
                PublicKey::from_public_key_pem(&text)
                    .map_err(|_| Error::Config(format!("{key}: not a PEM public key (RSA or DSA)")))?
            } else {
                key_by_fingerprint(&account, &key)?
            };
            let contact = parse_bare(&contact)?;
            account.trust(&contact, public.clone())?;
            println!("trusted for {contact}: {}", fingerprint(&public)?);
        }
        AccountCmd::Trust(TrustCmd::Petname { fingerprint: fp, name }) => {
            let account = open_account(c)?;
            let key = key_by_fingerprint(&account, &fp)?;
            account.set_petname(&key, &name)?;
        }
        AccountCmd::Send { peer, text } => {
            let peer = parse_jid(&peer)?;
            let mut client = connect(c).await?;
            match client.send_text(&peer, &text).await? {
                Delivery::Online { sas } => {
                    println!(
                        "sent in an encrypted session{}",
                        sas.map(|s| format!(" (SAS {s})")).unwrap_or_default()
                    );
                    // End the session cleanly; an absent acknowledgement is not an error here.
                    let _ = client.terminate(&peer.to_bare()).await;
                }
                Delivery::Offline => println!("{} is offline: sent in an offline session", peer.to_bare()),
                _ => {}
            }
            client.disconnect().await?;
        }
        AccountCmd::Offline(OfflineCmd::Publish) => {
            let client = connect(c).await?;
            client.go_offline().await?;
            println!("offline options published; you are offline");
        }
        AccountCmd::Offline(OfflineCmd::Withdraw) => {
            let mut client = connect(c).await?;
            client.withdraw_offline().await?;
            client.disconnect().await?;
            println!("offline options withdrawn");
        }
        AccountCmd::Receive { wait } => {
            let mut client = connect(c).await?;
            let until = tokio::time::Instant::now() + Duration::from_secs(wait);
            loop {
                match tokio::time::timeout_at(until, client.next_event()).await {
                    Err(_) => break,
                    Ok(e) => print_event(&e?),
                }
            }
            client.disconnect().await?;
        }
        AccountCmd::Chat { peer } => chat(c, &peer).await?,
    }
    Ok(())
}

async fn chat(c: &Common, peer: &str) -> Result<(), Error> {
    let peer_jid = parse_jid(peer)?;
    let bare = peer_jid.to_bare();
    let mut client = connect(c).await?;
    if !client.resources(&bare).is_empty() || peer_jid.resource().is_some() {
        match client.negotiate(&peer_jid, Mode::Four).await? {
            Some(sas) => {
                println!("* encrypted session with {peer}; SAS {sas}: compare it with {peer}, then /verify")
            }
            None => println!("* encrypted session with {peer}"),
        }
    } else {
        println!("* {peer} is offline: lines go out in an offline session");
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    loop {
        tokio::select! {
            line = rx.recv() => {
                let Some(line) = line else { break };
                match line.trim() {
                    "/quit" => break,
                    "/rekey" => client.rekey(&bare, "").await?,
                    "/verify" => {
                        client.engine_mut().confirm_sas(&bare)?;
                        println!("* {peer}'s key is now verified");
                    }
                    "" => {}
                    text => match client.send_text(&peer_jid, text).await {
                        Ok(_) => {}
                        Err(e) => println!("!! not sent: {e}"),
                    },
                }
            }
            e = client.next_event() => print_event(&e?),
        }
    }
    if client.engine().has_session(&bare) {
        let _ = client.terminate(&bare).await;
    }
    client.disconnect().await
}
