//! An echo bot: every message a contact sends inside an encrypted session comes back to it,
//! inside the session (or, sent while the bot was away, in a session negotiated on return).
//!
//! ```text
//! cargo run -p esession-xmpp --features starttls --example echo_bot -- JID PASSWORD [SERVER [DATA_DIR]]
//! cargo run -p esession-xmpp --example echo_bot -- bot@localhost secret 127.0.0.1:5222 /tmp/bot
//! ```
//!
//! - Transport: built with the `starttls` feature, the bot requires STARTTLS (certificate
//!   checked against the system's roots) and finds the server through the JID's DNS SRV record
//!   when no SERVER is given; a SERVER on a loopback address is spoken to in plain TCP. Without the feature it has no TLS stack, so it only talks plain
//!   TCP to a server on a loopback address (a local test server such as the repository's
//!   `e2e/server`): the password never crosses a network in clear.
//! - Identity: the account lives in DATA_DIR (default `./echo-bot-data`); on the first run an
//!   RSA identity key is generated and sealed there, and its fingerprint printed for contacts
//!   to verify.
//! - Trust on first use ([`ClientBuilder::trust_on_first_use`]): a contact the bot has no key
//!   for may identify with any key, which is pinned (verified) for it as the session is
//!   established; a later negotiation with another key under that JID fails (`key-trust`).
//!   Accept a contact's new key with `esession trust verify` (the CLI) on the bot's data
//!   directory.
//! - The event loop: messages are echoed (offline messages acknowledged once echoed),
//!   subscription requests approved, IQ requests answered with an error (roster pushes with
//!   a result, RFC 6121 §2.1.6), clear messages ignored (they are not protected).
//!
//! Logs: the library emits `tracing` events (connection, negotiation steps, failed checks;
//! never keys, SAS or content); install any subscriber (e.g. `tracing-subscriber`) to see them.

use esession_xmpp::engine::iq_error;
use esession_xmpp::minidom::Element;
use esession_xmpp::{
    Account, BareJid, Client, ClientBuilder, Error, Event, PrivateKey, Sealing, Tls, fingerprint,
};
use std::path::{Path, PathBuf};

/// What the command line gives.
pub(crate) struct Args {
    /// The bot's JID.
    pub(crate) jid: String,
    /// Its password.
    pub(crate) password: String,
    /// `host[:port]`, or `None` for the JID's domain (DNS SRV).
    pub(crate) server: Option<String>,
    /// The account's data directory.
    pub(crate) data: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut a = std::env::args().skip(1);
    let usage = "usage: echo_bot JID PASSWORD [SERVER [DATA_DIR]]";
    let jid = a.next().ok_or(usage)?;
    let password = a.next().ok_or(usage)?;
    let server = a.next().filter(|s| !s.is_empty());
    let data = a.next().map_or_else(|| PathBuf::from("echo-bot-data"), PathBuf::from);
    Ok(Args { jid, password, server, data })
}

/// Opens the account in `dir`, with an identity key generated on the first run.
///
/// # Errors
/// The directory or its database cannot be used; key generation failed.
pub(crate) fn open_account(dir: &Path) -> Result<Account, Error> {
    // A random sealing key in DATA_DIR/seal.key (owner-only); a passphrase is the alternative.
    let account = Account::open(dir, Sealing::KeyFile)?;
    let key = match account.identity()? {
        Some(k) => k,
        None => {
            let mut rng = getrandom::rand_core::UnwrapErr(getrandom::SysRng);
            let k = PrivateKey::generate_rsa(&mut rng, 2048)
                .map_err(|e| Error::Config(format!("key generation: {e}")))?;
            account.set_identity(&k, false)?;
            k
        }
    };
    println!("identity key fingerprint: {}", fingerprint(&key.public_key())?);
    Ok(account)
}

/// Logs in: STARTTLS with the `starttls` feature, except to a server given on a loopback
/// address (a local test server: plain TCP, as without the feature).
///
/// # Errors
/// As [`Client::connect`].
pub(crate) async fn connect(args: &Args, account: Account) -> Result<Client, Error> {
    let loopback = args.server.as_deref().is_some_and(|s| {
        let host = s.rsplit_once(':').map_or(s, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
    });
    let tls = if cfg!(feature = "starttls") && !loopback { Tls::StartTls } else { Tls::PlainLoopbackOnly };
    let mut b: ClientBuilder = Client::builder(&args.jid, &args.password).tls(tls).trust_on_first_use(true);
    if let Some(s) = &args.server {
        b = b.server(s);
    }
    b.connect(account).await
}

/// The bot's state across events.
#[derive(Default)]
pub(crate) struct Bot {
    /// Messages echoed so far.
    pub(crate) echoed: usize,
}

impl Bot {
    /// Handles one event.
    ///
    /// # Errors
    /// The connection is lost; the account's store failed.
    pub(crate) async fn on_event(&mut self, client: &mut Client, event: Event) -> Result<(), Error> {
        let body = event.body();
        match event {
            Event::Negotiated { peer, sas, .. } => {
                // The client pinned the key on first use: from now on only it is accepted.
                let sas = sas.map(|s| s.to_string()).unwrap_or_default();
                println!("{}: session established (SAS {sas})", peer.to_bare());
            }
            Event::Message { peer, id, .. } => {
                if let Some(text) = body.filter(|t| !t.is_empty()) {
                    // Inside the session with the sender (negotiated anew if it was offline).
                    match client.send_text(&peer, &text).await {
                        Ok(_) => self.echoed += 1,
                        Err(e @ (Error::Disconnected(_) | Error::Store(_))) => return Err(e),
                        Err(e) => eprintln!("{}: cannot echo: {e}", peer.to_bare()),
                    }
                }
                // An offline message is kept until acknowledged (redelivered after a crash).
                if let Some(id) = id {
                    client.ack(&id)?;
                }
            }
            Event::SubscriptionRequest { peer } => {
                client.approve(&peer).await?;
                client.subscribe(&peer).await?;
            }
            Event::Iq { stanza } => client.send_clear(answer(&stanza, client.jid().to_bare())).await?,
            Event::Clear { peer, .. } => {
                eprintln!("{}: clear message ignored (not protected)", peer.to_bare())
            }
            Event::Untrusted { peer, fingerprint, .. } => {
                eprintln!(
                    "{}: offline message held, signed by a key not pinned: {fingerprint}",
                    peer.to_bare()
                );
            }
            Event::Alert { peer, alert } => eprintln!("{}: {alert}", peer.to_bare()),
            Event::Failed { peer, failure } => eprintln!("{}: {failure}", peer.to_bare()),
            _ => {}
        }
        Ok(())
    }
}

/// The answer to an IQ request: a result to a roster push from our own account, else
/// `service-unavailable` (the bot serves no IQ).
fn answer(request: &Element, me: BareJid) -> Element {
    let from_server = request.attr("from").is_none_or(|f| f == me.as_str());
    if from_server
        && request.attr("type") == Some("set")
        && request.get_child("query", "jabber:iq:roster").is_some()
    {
        let mut r = Element::bare("iq", "jabber:client");
        for (k, v) in [("type", Some("result")), ("id", request.attr("id"))] {
            if let (Some(v), Ok(k)) = (v, esession_xmpp::minidom::rxml::NcName::try_from(k)) {
                r.set_attr(esession_xmpp::minidom::rxml::Namespace::NONE, k, v.to_owned());
            }
        }
        return r;
    }
    iq_error(request, "service-unavailable")
}

/// Opens the account, logs in and serves until the connection is lost.
async fn run(args: &Args) -> Result<(), Error> {
    let account = open_account(&args.data)?;
    let mut client = connect(args, account).await?;
    println!("online as {}", client.jid());
    let mut bot = Bot::default();
    loop {
        let event = client.next_event().await?;
        bot.on_event(&mut client, event).await?;
    }
}

#[allow(dead_code)]
#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = match args() {
        Ok(a) => a,
        Err(usage) => {
            eprintln!("{usage}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo_bot: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
