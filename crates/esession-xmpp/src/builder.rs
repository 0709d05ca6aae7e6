//! [`ClientBuilder`]: how to log in, with the negotiation [`Config`] of the application
//! (algorithms, `logging`, identities, other shared secret, ...), and [`engine_for`], the one
//! place where an account's [`Engine`] is made (by [`crate::Client`], and by an application
//! that brings its own XMPP connection).
//!
//! ```no_run
//! # async fn run() -> Result<(), esession_xmpp::Error> {
//! use esession_xmpp::{Account, Client, Config, Profile, Sealing};
//! use esession_xmpp::esession_crypto::ModpGroup;
//! let account = Account::open(std::path::Path::new("/tmp/bot"), Sealing::KeyFile)?;
//! let mut config = Config::new(Profile::Xep);
//! config.provider.modp = vec![ModpGroup::G14]; // offer and accept 2048-bit MODP only
//! let client = Client::builder("bot@localhost", "secret")
//!     .server("127.0.0.1:5222")
//!     .config(config)
//!     .timeout(std::time::Duration::from_secs(10))
//!     .connect(account)
//!     .await?;
//! assert_eq!(client.engine().config().provider.modp, [ModpGroup::G14]);
//! # Ok(()) }
//! ```

use crate::client::{Options, Tls};
use crate::engine::{Engine, Limits};
use crate::{Account, Client, Error};
use esession_crypto::{PrivateKey, Profile};
use esession_forms::names::PubkeyMethod;
use esession_negotiate::Config;
use std::time::Duration;

/// How to log in, and with what configuration; made by [`Client::builder`], ended by
/// [`ClientBuilder::connect`]. Without [`ClientBuilder::config`], the client runs
/// `Config::new(profile)` (the safe defaults of the profile).
///
/// Defaults: the JID's domain through its DNS SRV record, plain TCP to a loopback server only
/// ([`Tls::PlainLoopbackOnly`]: set [`Tls::StartTls`] for any other server; feature
/// `starttls`), [`Profile::Xep`], a 20-second timeout, offline options valid for a week, one
/// pooled key pair per group.
pub struct ClientBuilder {
    opts: Options,
    /// Whether [`ClientBuilder::profile`] was called (checked against a given configuration).
    profile_set: bool,
    config: Option<Config>,
    limits: Option<Limits>,
    first_use: bool,
}

impl core::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The password and the configuration's secrets (identity key, OSS) are not shown.
        f.debug_struct("ClientBuilder")
            .field("opts", &self.opts)
            .field("config", &self.config.as_ref().map(|_| "<given>"))
            .finish_non_exhaustive()
    }
}

impl From<Options> for ClientBuilder {
    /// A builder with these options (and `Config::new(opts.profile)`).
    fn from(opts: Options) -> Self {
        Self { opts, profile_set: false, config: None, limits: None, first_use: false }
    }
}

impl ClientBuilder {
    /// A builder for `jid` (bare, or full to ask for a resource) with `password`.
    #[must_use]
    pub fn new(jid: &str, password: &str) -> Self {
        Self::from(Options::new(jid, password, ""))
    }

    /// The server as `host[:port]` (a name or an IP address, `[v6]` in brackets; port 5222 by
    /// default). Without it (or with an empty string): the JID's domain, through its DNS SRV
    /// record (needs the `starttls` feature, which brings the resolver).
    #[must_use]
    pub fn server(mut self, server: &str) -> Self {
        let s = server.trim();
        self.opts.server = (!s.is_empty()).then(|| s.to_owned());
        self
    }

    /// The DNS server asked for the domain's SRV records when no server is given
    /// ([`Options::dns`]; default: the system's resolver configuration).
    #[must_use]
    pub fn dns(mut self, at: std::net::SocketAddr) -> Self {
        self.opts.dns = Some(at);
        self
    }

    /// Transport security.
    #[must_use]
    pub fn tls(mut self, tls: Tls) -> Self {
        self.opts.tls = tls;
        self
    }

    /// The wire profile of the default configuration. With [`ClientBuilder::config`], the
    /// configuration's own `profile` counts: [`ClientBuilder::connect`] fails with
    /// [`Error::Config`] when both are given and differ.
    #[must_use]
    pub fn profile(mut self, profile: Profile) -> Self {
        self.opts.profile = profile;
        self.profile_set = true;
        self
    }

    /// The negotiation configuration: what we offer and accept (algorithms, `logging`,
    /// `security`, identities, rekey frequency), an other shared secret, Bob's policy. When it
    /// holds no identity key, the account's is added (see [`with_identity`] for the rule).
    #[must_use]
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// How long to wait for the server and for a contact.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.opts.timeout = timeout;
        self
    }

    /// How long offline options stay valid once published.
    #[must_use]
    pub fn offline_lifetime(mut self, lifetime: chrono::Duration) -> Self {
        self.opts.offline_lifetime = lifetime;
        self
    }

    /// Diffie-Hellman key pairs kept ready per offered group by a background thread
    /// ([`crate::KeyPool`]); 0 generates them when a negotiation starts.
    #[must_use]
    pub fn key_pool_depth(mut self, depth: usize) -> Self {
        self.opts.key_pool_depth = depth;
        self
    }

    /// The engine's limits against hostile peers (default: [`Limits::default`]).
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// Trust on first use ([`Engine::set_trust_on_first_use`]): a contact with no key
    /// associated yet may identify with any key, which is then pinned (verified) for it by the
    /// client as the session is established ([`crate::client::trust_on_first_use`]); another
    /// key under that JID is refused afterwards. Off by default: only keys the user trusted
    /// ([`Account::trust`]) are accepted. For bots and other programs without a person to
    /// compare fingerprints; whoever answers first for a JID is trusted as that JID.
    #[must_use]
    pub fn trust_on_first_use(mut self, on: bool) -> Self {
        self.first_use = on;
        self
    }

    /// The engine the client will run for `account`, without connecting: what
    /// [`ClientBuilder::connect`] makes before it logs in (for tests, and to inspect the
    /// effective configuration).
    ///
    /// # Errors
    /// As [`engine_for`]; [`Error::Config`] when [`ClientBuilder::profile`] and the
    /// configuration's profile differ.
    pub fn engine(mut self, account: &Account) -> Result<Engine, Error> {
        let mut engine = self.unpooled(account)?;
        attach_pool(&mut engine, self.opts.key_pool_depth)?;
        Ok(engine)
    }

    /// [`ClientBuilder::engine`] without the key pool (the client attaches it once logged in,
    /// so that a failed login costs no key generation).
    fn unpooled(&mut self, account: &Account) -> Result<Engine, Error> {
        let config = match self.config.take() {
            Some(c) if self.profile_set && c.profile != self.opts.profile => {
                return Err(Error::Config(format!(
                    "the profile given ({:?}) is not the configuration's ({:?})",
                    self.opts.profile, c.profile
                )));
            }
            Some(c) => c,
            None => Config::new(self.opts.profile),
        };
        let mut engine = engine_for(config, account)?;
        if let Some(l) = self.limits.take() {
            engine.set_limits(l);
        }
        engine.set_trust_on_first_use(self.first_use);
        Ok(engine)
    }

    /// Logs in with `account`; see [`Client::connect`], which is this with [`Options`].
    ///
    /// # Errors
    /// As [`Client::connect`]; [`Error::Config`] when the profile given and the
    /// configuration's differ.
    pub async fn connect(mut self, account: Account) -> Result<Client, Error> {
        let engine = self.unpooled(&account)?;
        // Issue 21: a data directory binds the same resource in every process (a bare JID
        // given; a full one is the application's choice). A process killed during an offline
        // return leaves its stream to the server with what it had not acknowledged; the next
        // process, on the same resource, replaces that stream at once and the server hands
        // those stanzas over again (Prosody stores them offline again). On another resource
        // they wait for the old stream to expire (`smacks_hibernation_time`) and are then
        // bounced to their senders if a resource of ours is online: lost to us.
        if !account.is_in_memory() && !self.opts.jid.contains('/') {
            self.opts.jid = format!("{}/{}", self.opts.jid, account.resource()?);
        }
        Client::open(self.opts, engine, account).await
    }
}

/// `config` with `identity` added when it holds none: the rule by which an account's identity
/// key joins the configuration an application gives ([`ClientBuilder::config`]).
///
/// - A configuration that holds an identity key keeps it: the account's is not used.
/// - Otherwise the account's key (if any) is added as [`Config::identified_by`] does: it
///   becomes our identity and our signature algorithm, and the `init_pubkey`/`resp_pubkey`
///   offers become `key, hash, none`, except that an offer the application changed from `none`
///   (the default without a key) is kept as it gave it (e.g. `resp_pubkey` = `key` only, to
///   require the peer to identify).
#[must_use]
pub fn with_identity(config: Config, identity: Option<PrivateKey>) -> Config {
    let Some(key) = identity.filter(|_| config.identity.is_none()) else { return config };
    let init = config.init_pubkey.clone();
    let resp = config.resp_pubkey.clone();
    let mut config = config.identified_by(key);
    if init != [PubkeyMethod::None] {
        config.init_pubkey = init;
    }
    if resp != [PubkeyMethod::None] {
        config.resp_pubkey = resp;
    }
    config
}

/// The engine of `account`: `config` with the account's identity key ([`with_identity`]), the
/// account's durable stores, and its inbox of offline messages not yet acknowledged.
/// [`crate::Client`] runs it; an application with its own XMPP connection makes its engine
/// here too (then [`Engine::set_account`] once it knows its JID, and
/// [`crate::client::come_back_from`] before announcing presence).
///
/// # Errors
/// The account's records cannot be read or unsealed.
pub fn engine_for(config: Config, account: &Account) -> Result<Engine, Error> {
    let config = with_identity(config, account.identity()?);
    let mut engine = Engine::new(config, account.stores()?);
    // Offline messages wait in the account until acknowledged (Client::ack).
    engine.set_inbox(Box::new(account.inbox()?))?;
    Ok(engine)
}

/// Attaches a [`crate::KeyPool`] of `depth` pairs per group the engine offers (none for 0).
///
/// # Errors
/// The pool's thread cannot start.
pub(crate) fn attach_pool(engine: &mut Engine, depth: usize) -> Result<(), Error> {
    if depth > 0 {
        let groups = engine.config().provider.modp.clone();
        engine.set_key_pool(crate::KeyPool::spawn(&groups, depth)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use esession_crypto::{CryptAlg, ModpGroup};
    use esession_forms::names::Logging;

    fn account(_name: &str, key: Option<&PrivateKey>) -> (Account, ()) {
        let a = Account::in_memory().unwrap();
        if let Some(k) = key {
            a.set_identity(k, false).unwrap();
        }
        (a, ())
    }

    fn rsa() -> PrivateKey {
        PrivateKey::from_pkcs8_pem(include_str!("../tests/vectors/pem/rsa.pem")).unwrap()
    }

    #[test]
    fn the_given_configuration_reaches_the_engine_with_the_accounts_identity() {
        let key = rsa();
        let (acct, _d) = account("given", Some(&key));
        let mut cfg = Config::new(Profile::Xep);
        cfg.provider.modp = vec![ModpGroup::G14];
        cfg.provider.crypt_algs = vec![CryptAlg::Aes256Ctr];
        cfg.logging = vec![Logging::MustNot];
        cfg.resp_pubkey = vec![PubkeyMethod::Key];
        let engine =
            ClientBuilder::new("bot@localhost", "pw").config(cfg).key_pool_depth(0).engine(&acct).unwrap();
        let c = engine.config();
        assert_eq!(c.provider.modp, [ModpGroup::G14]);
        assert_eq!(c.provider.crypt_algs, [CryptAlg::Aes256Ctr]);
        assert_eq!(c.logging, [Logging::MustNot]);
        // The account's key joined; the offer the application changed is kept, the default
        // `none` became `key, hash, none`.
        assert_eq!(c.identity.as_ref().map(PrivateKey::public_key), Some(key.public_key()));
        assert_eq!(c.resp_pubkey, [PubkeyMethod::Key]);
        assert_eq!(c.init_pubkey, [PubkeyMethod::Key, PubkeyMethod::Hash, PubkeyMethod::None]);
        assert!(engine.key_pool().is_none());
    }

    #[test]
    fn a_configurations_own_identity_wins_over_the_accounts() {
        let theirs = rsa();
        let (acct, _d) = account("own", Some(&theirs));
        let mine = PrivateKey::generate_rsa(&mut crate::engine::os_rng(), 2048).unwrap();
        let mine_public = mine.public_key();
        let cfg = Config::new(Profile::Xep).identified_by(mine);
        let engine =
            ClientBuilder::new("bot@localhost", "pw").config(cfg).key_pool_depth(0).engine(&acct).unwrap();
        assert_eq!(
            engine.config().identity.as_ref().map(PrivateKey::public_key).as_ref(),
            Some(&mine_public)
        );
        assert_ne!(theirs.public_key(), mine_public);
    }

    #[test]
    fn without_a_configuration_the_profiles_defaults_run_and_a_profile_conflict_is_refused() {
        let (acct, _d) = account("default", None);
        let engine =
            ClientBuilder::new("bot@localhost", "pw").profile(Profile::Gajim).key_pool_depth(0).engine(&acct);
        let engine = engine.unwrap();
        assert_eq!(engine.config().profile, Profile::Gajim);
        assert!(engine.config().identity.is_none());
        let e = ClientBuilder::new("bot@localhost", "pw")
            .profile(Profile::Gajim)
            .config(Config::new(Profile::Xep))
            .engine(&acct)
            .unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{e:?}");
    }

    #[test]
    fn options_convert_to_the_same_builder() {
        let mut o = Options::new("bot@localhost", "pw", " 127.0.0.1:5222 ");
        o.key_pool_depth = 0;
        let b = ClientBuilder::from(o);
        assert_eq!(b.opts.server.as_deref(), Some("127.0.0.1:5222"));
        let b = ClientBuilder::new("bot@localhost", "pw").server("  ");
        assert_eq!(b.opts.server, None);
        assert!(!format!("{b:?}").contains("pw"));
    }
}
