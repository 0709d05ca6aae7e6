//! The load generator of `cargo xtask load` (issue 21): one client (a bot) and many contacts.
//!
//! `load --port PORT [--quick]` measures, and prints `FIG name value` lines (read by xtask)
//! and a Markdown section for docs/performance.md:
//!
//! 1. **In memory, the bot in a process of its own** (this binary run as `load bot`, stanzas
//!    framed over its stdin/stdout, so that its memory and CPU time are its own): memory per
//!    established session and per pending negotiation (growth of the bot's resident set, over N
//!    contacts, each a fresh engine in this process that negotiates a 4-message session with the
//!    bot, group 14, RSA-2048 identities, the bot's key pool on); negotiations per second the
//!    bot sustains (the CPU time its main thread spends handling stanzas: a busy machine does
//!    not count against it) against the sum
//!    of the primitives its side of one negotiation needs, measured in the same process (one
//!    agreement, one RSA signature, one RSA verification; its key pair comes from the pool);
//!    time to the first message of a new contact while the bot holds N sessions.
//! 2. **Through the server** (Prosody on loopback, started by xtask with `e2e/server`; users
//!    `alice` and `bob`): messages per second from one client to the other, encrypted and in
//!    clear, 200 octets and 4 KiB; latency percentiles (p50, p99) of one message at a time; time
//!    to the first message (negotiation included) through the server.
//! 3. **Where a client's time per message goes**, in memory: making, serializing, parsing and
//!    handling one message, encrypted and in clear, the same text as through the server: what
//!    the clients' CPU column of 2 is made of, and which part is the engine's own.
//!
//! Every figure is measured in the same run as what it is compared with.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use esession_crypto::{CryptoProvider, ModpGroup, PrivateKey, Profile, SignAlg};
use esession_negotiate::{Config, Jid, Mode};
use esession_stanza::EncryptOptions;
use esession_xmpp::{Account, Client, Engine, EngineStores, Event, KeyPool, Limits, Options, Sealing};
use minidom::Element;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const BOT: &str = "bot@example.org/load";

fn now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

fn config(key: PrivateKey) -> Config {
    let mut cfg = Config::with_identity(key);
    cfg.provider = CryptoProvider { modp: vec![ModpGroup::G14], ..CryptoProvider::default() };
    cfg
}

fn bot_key() -> PrivateKey {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/pem/rsa.pem");
    PrivateKey::from_pkcs8_pem(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn os_rng() -> getrandom::rand_core::UnwrapErr<getrandom::SysRng> {
    getrandom::rand_core::UnwrapErr(getrandom::SysRng)
}

fn set(e: &mut Element, name: &str, value: &str) {
    e.set_attr(
        minidom::rxml::Namespace::NONE,
        minidom::rxml::NcName::try_from(name).unwrap(),
        value.to_owned(),
    );
}

// ---------------------------------------------------------------------------------------------
// Framing between the driver and the bot: a decimal length, a newline, the octets.

fn write_frame(w: &mut impl Write, b: &[u8]) {
    writeln!(w, "{}", b.len()).unwrap();
    w.write_all(b).unwrap();
}

fn read_frame(r: &mut impl BufRead) -> Option<Vec<u8>> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let n: usize = line.trim().parse().ok()?;
    let mut b = vec![0u8; n];
    r.read_exact(&mut b).ok()?;
    Some(b)
}

/// Resident memory of this process, in octets (VmRSS).
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |k| k * 1024)
}

/// The CPU time the calling thread has run, in nanoseconds (`CLOCK_THREAD_CPUTIME_ID`): what
/// the bot's engine spent, without the time it waited for a core while other processes (a
/// build, the server) ran. The negotiations' mean and the primitives' median are measured with
/// this same clock.
fn clock_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// The bot process.

/// `load bot`: one engine; frames `S<xml>` (a stanza to handle: the reply is `O<xml>` per
/// stanza to send, `V<kind>` per event, then `E`), `M` (reply `R<rss> <sessions> <pending>
/// <cpu_ns> <pool_missed>`), `P` (the primitives: reply `R<agree_ns> <sign_ns> <verify_ns>`),
/// `F<n>` (the failure budget per contact and minute from now on; reply `E`).
fn bot(keyfile: &str, n: usize) {
    // The bot knows its contacts: key i % K for the i-th JID of each group (see `jids`).
    let keys = read_keys(keyfile);
    let mut trust = esession_negotiate::MemoryTrust::default();
    for (i, j) in jids(n).iter().enumerate() {
        trust.trust(&Jid::new(j).unwrap().to_bare(), keys[i % keys.len()].public_key());
    }
    let mut stores = EngineStores::in_memory();
    stores.trust = Box::new(trust);
    let mut engine = Engine::new(config(bot_key()), stores);
    let mut limits = Limits::default();
    limits.pending_total = 1 << 20;
    limits.pending_octets = 1 << 40;
    limits.strangers = 1 << 20;
    engine.set_limits(limits);
    engine.set_account(&Jid::new(BOT).unwrap());
    engine.set_key_pool(KeyPool::spawn(&[ModpGroup::G14], 64).unwrap());
    let stdin = std::io::stdin();
    let mut r = BufReader::new(stdin.lock());
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let mut cpu = 0u64;
    while let Some(f) = read_frame(&mut r) {
        match f.first() {
            Some(b'S') => {
                let s = esession_forms::xml::parse(core::str::from_utf8(&f[1..]).unwrap()).unwrap();
                let t0 = clock_ns();
                let step = engine.handle(now(), &s);
                cpu += clock_ns() - t0;
                for o in step.send {
                    let mut b = b"O".to_vec();
                    b.extend_from_slice(String::from(&o).as_bytes());
                    write_frame(&mut w, &b);
                }
                for e in step.events {
                    let kind = match e {
                        Event::Negotiated { .. } => "negotiated",
                        Event::Message { .. } => "message",
                        Event::Failed { failure, .. } => &*format!("failed {failure}").leak(),
                        _ => "other",
                    };
                    write_frame(&mut w, format!("V{kind}").as_bytes());
                }
                write_frame(&mut w, b"E");
            }
            Some(b'M') => {
                let (pending, sessions) = engine.load();
                let missed = engine.key_pool().map_or(0, |p| p.stats(ModpGroup::G14).missed);
                write_frame(&mut w, format!("R{} {sessions} {pending} {cpu} {missed}", rss()).as_bytes());
            }
            Some(b'F') => {
                limits.failures_per_minute = core::str::from_utf8(&f[1..]).unwrap().parse().unwrap();
                engine.set_limits(limits);
                write_frame(&mut w, b"R0");
            }
            Some(b'P') => {
                let p = primitives();
                write_frame(&mut w, format!("R{} {} {}", p.0, p.1, p.2).as_bytes());
            }
            _ => break,
        }
        w.flush().unwrap();
    }
}

/// The bot's primitives for one negotiation (median of 41 runs, ns, to compare with the mean
/// time per negotiation): one agreement in group 14, one RSA-2048 signature, one verification.
fn primitives() -> (u64, u64, u64) {
    let mut rng = os_rng();
    let best = |f: &mut dyn FnMut()| {
        let mut v: Vec<u64> = (0..41)
            .map(|_| {
                let t = clock_ns();
                f();
                clock_ns() - t
            })
            .collect();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let a = esession_crypto::DhKeyPair::generate(ModpGroup::G14, &mut rng).unwrap();
    let b = esession_crypto::DhKeyPair::generate(ModpGroup::G14, &mut rng).unwrap();
    let agree = best(&mut || {
        std::hint::black_box(a.agree_reusable(b.public()).unwrap());
    });
    let sk = bot_key();
    let pk = sk.public_key();
    let mac = [7u8; 32];
    let sig = sk.sign(Profile::Xep, &SignAlg::RsaSha256, &mac, &mut rng).unwrap();
    let sign = best(&mut || {
        std::hint::black_box(sk.sign(Profile::Xep, &SignAlg::RsaSha256, &mac, &mut os_rng()).unwrap());
    });
    let verify = best(&mut || pk.verify(Profile::Xep, &SignAlg::RsaSha256, &mac, &sig).unwrap());
    (agree, sign, verify)
}

/// Contact keys: one RSA key is trusted for at most 64 JIDs (the trust store's bound), so the
/// `n + 9` contacts that finish negotiations with a bot of `n` ([`jids`]) share this many keys
/// (at least 2).
fn keys_for(n: usize) -> usize {
    (n + 9).div_ceil(64).max(2)
}
const SPLIT: &str = "----SPLIT----\n";

fn read_keys(path: &str) -> Vec<PrivateKey> {
    std::fs::read_to_string(path)
        .unwrap()
        .split(SPLIT)
        .filter(|p| !p.trim().is_empty())
        .map(|p| PrivateKey::from_pkcs8_pem(p).unwrap())
        .collect()
}

/// The JIDs of contacts that finish negotiations with a bot of `n` contacts, in the order
/// whose index picks their key.
fn jids(n: usize) -> Vec<String> {
    let mut v: Vec<String> = (0..4).map(|i| format!("warm{i}@example.com/load")).collect();
    v.extend((0..n).map(|i| format!("c{i}@example.com/load")));
    v.extend((0..5).map(|i| format!("late{i}@example.com/load")));
    v
}

// ---------------------------------------------------------------------------------------------
// The driver's side of the bot.

struct BotProcess {
    child: Child,
    w: ChildStdin,
    r: BufReader<ChildStdout>,
}

/// What the bot answered to one stanza.
#[derive(Default)]
struct Answer {
    send: Vec<Element>,
    negotiated: usize,
    messages: usize,
}

impl BotProcess {
    fn spawn(keyfile: &str, n: usize) -> Self {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .arg("bot")
            .arg(keyfile)
            .arg(n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let w = child.stdin.take().unwrap();
        let r = BufReader::new(child.stdout.take().unwrap());
        Self { child, w, r }
    }

    fn handle(&mut self, from: &str, mut s: Element) -> Answer {
        set(&mut s, "from", from);
        set(&mut s, "to", BOT);
        let mut b = b"S".to_vec();
        b.extend_from_slice(String::from(&s).as_bytes());
        write_frame(&mut self.w, &b);
        self.w.flush().unwrap();
        let mut a = Answer::default();
        loop {
            let f = read_frame(&mut self.r).expect("the bot died");
            match f.first() {
                Some(b'O') => {
                    a.send.push(esession_forms::xml::parse(core::str::from_utf8(&f[1..]).unwrap()).unwrap())
                }
                Some(b'V') if &f[1..] == b"negotiated" => a.negotiated += 1,
                Some(b'V') if &f[1..] == b"message" => a.messages += 1,
                Some(b'V') => {}
                _ => return a,
            }
        }
    }

    fn query(&mut self, q: &[u8]) -> Vec<u64> {
        write_frame(&mut self.w, q);
        self.w.flush().unwrap();
        let f = read_frame(&mut self.r).expect("the bot died");
        core::str::from_utf8(&f[1..]).unwrap().split(' ').map(|v| v.parse().unwrap()).collect()
    }
}

impl Drop for BotProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A contact: its own engine with `key`, trusting the bot's key.
fn contact(key: &PrivateKey) -> Engine {
    let pem = key.to_pkcs8_pem().unwrap();
    let mut trust = esession_negotiate::MemoryTrust::default();
    trust.trust(&Jid::new(BOT).unwrap().to_bare(), bot_key().public_key());
    let mut stores = EngineStores::in_memory();
    stores.trust = Box::new(trust);
    Engine::new(config(PrivateKey::from_pkcs8_pem(&pem).unwrap()), stores)
}

/// Runs stanzas between contact `c` (JID `me`) and the bot until neither has anything to say;
/// returns how many sessions the bot established and messages it received.
fn exchange(
    bot: &mut BotProcess,
    me: &str,
    c: &mut Engine,
    first: Vec<Element>,
    stop_after_bot: bool,
) -> Answer {
    let mut total = Answer::default();
    let mut to_bot = first;
    while !to_bot.is_empty() {
        let mut to_me = Vec::new();
        for s in to_bot.drain(..) {
            let a = bot.handle(me, s);
            total.negotiated += a.negotiated;
            total.messages += a.messages;
            to_me.extend(a.send);
        }
        if stop_after_bot {
            break;
        }
        for mut s in to_me {
            set(&mut s, "from", BOT);
            let step = c.handle(now(), &s);
            to_bot.extend(step.send);
        }
    }
    total
}

struct InMemory {
    n: usize,
    per_session: f64,
    per_pending: f64,
    bot_ms_per_negotiation: f64,
    primitives_ms: f64,
    pool_missed: u64,
    first_message_ms: f64,
    /// The bot's time per message of a contact with a session (µs), alone.
    legit_us: f64,
    /// Its time per flood stanza (µs): repeated requests, `<c/>` without a session, error
    /// stanzas, all from one stranger, the failure budget off (every stanza handled).
    flood_us: [f64; 3],
    /// The bot's time per legitimate message, flood included, when ten flood stanzas (of the
    /// three kinds in turn) come between two messages, over the time alone: with the failure
    /// budget off (what the first `Limits::failures_per_minute` failing stanzas of a minute
    /// cost), and with the default budget spent (the rest of the flood).
    flood_factor: f64,
    flood_factor_cut: f64,
    /// The time per flood stanza once the flooder is cut off (µs).
    cut_us: f64,
}

fn in_memory(n: usize, keyfile: &str, keys: &[PrivateKey]) -> InMemory {
    let bot_jid = Jid::new(BOT).unwrap();
    let mut bot = BotProcess::spawn(keyfile, n);
    let all = jids(n);
    let key = |j: &str| &keys[all.iter().position(|x| x == j).unwrap_or(0) % keys.len()];
    // Warm up (allocator arenas, the pool): one session, not counted.
    let warm = |bot: &mut BotProcess, i: usize| {
        let me = format!("warm{i}@example.com/load");
        let mut c = contact(key(&me));
        let step = c.start(now(), &bot_jid, Mode::Four).unwrap();
        exchange(bot, &me, &mut c, step.send, false)
    };
    for i in 0..4 {
        assert_eq!(warm(&mut bot, i).negotiated, 1);
    }
    std::thread::sleep(Duration::from_millis(300));
    let m0 = bot.query(b"M");
    let mut established = 0;
    for i in 0..n {
        let me = format!("c{i}@example.com/load");
        let mut c = contact(key(&me));
        let step = c.start(now(), &bot_jid, Mode::Four).unwrap();
        established += exchange(&mut bot, &me, &mut c, step.send, false).negotiated;
    }
    assert_eq!(established, n, "every contact negotiated a session");
    let m1 = bot.query(b"M");
    assert_eq!(m1[1] as usize, n + 4);
    let per_session = (m1[0].saturating_sub(m0[0])) as f64 / n as f64;
    let bot_ms = (m1[3] - m0[3]) as f64 / n as f64 / 1e6;
    // Time to the first message of a new contact, under the load of n sessions.
    let mut times = Vec::new();
    let mut lates = Vec::new();
    for i in 0..5 {
        let me = format!("late{i}@example.com/load");
        let mut c = contact(key(&me));
        let t = Instant::now();
        let step = c.start(now(), &bot_jid, Mode::Four).unwrap();
        exchange(&mut bot, &me, &mut c, step.send, false);
        let m = c.chat(&bot_jid.to_bare(), "hello", EncryptOptions::default()).unwrap();
        let a = bot.handle(&me, m);
        assert_eq!(a.messages, 1);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        lates.push((me, c));
    }
    times.sort_by(f64::total_cmp);
    let (legit_us, flood_us, flood_factor, flood_factor_cut, cut_us) = flood(&mut bot, &mut lates, keys);
    // Pending negotiations: n requests answered, never finished.
    let p0 = bot.query(b"M");
    for i in 0..n {
        let me = format!("p{i}@example.com/load");
        let mut c = contact(&keys[i % keys.len()]);
        let step = c.start(now(), &bot_jid, Mode::Four).unwrap();
        exchange(&mut bot, &me, &mut c, step.send, true);
    }
    let p1 = bot.query(b"M");
    assert_eq!((p1[2] - p0[2]) as usize, n, "the bot holds every pending negotiation");
    let per_pending = (p1[0].saturating_sub(p0[0])) as f64 / n as f64;
    let prim = bot.query(b"P");
    eprintln!("load: primitives agree {} sign {} verify {} ns", prim[0], prim[1], prim[2]);
    let primitives_ms = (prim[0] + prim[1] + prim[2]) as f64 / 1e6;
    InMemory {
        n,
        per_session,
        per_pending,
        bot_ms_per_negotiation: bot_ms,
        primitives_ms,
        pool_missed: p1[4],
        first_message_ms: times[times.len() / 2],
        legit_us,
        flood_us,
        flood_factor,
        flood_factor_cut,
        cut_us,
    }
}

/// Flood isolation, in the bot: its time per message of the contacts with a session, alone and
/// with a flood from one stranger in between; and per flood stanza of each kind.
fn flood(
    bot: &mut BotProcess,
    lates: &mut [(String, Engine)],
    keys: &[PrivateKey],
) -> (f64, [f64; 3], f64, f64, f64) {
    const FLOODER: &str = "flood@example.net/x";
    let bot_bare = Jid::new(BOT).unwrap().to_bare();
    let rounds = 400;
    let legit = |bot: &mut BotProcess, lates: &mut [(String, Engine)], i: usize| {
        let n = lates.len();
        let (me, c) = &mut lates[i % n];
        let m = c.chat(&bot_bare, "a message of a contact", EncryptOptions::default()).unwrap();
        assert_eq!(bot.handle(me, m).messages, 1, "the bot lost a message of a contact");
    };
    let cpu = |bot: &mut BotProcess| bot.query(b"M")[3];
    let t0 = cpu(bot);
    for i in 0..rounds {
        legit(bot, lates, i);
    }
    let alone = (cpu(bot) - t0) as f64 / rounds as f64;
    // The flood's stanzas: a real request (the first makes a responder, the next are over the
    // rate limit), a real encrypted stanza of another session (no session with the flooder),
    // an error stanza on a thread of nobody's.
    let mut c = contact(&keys[0]);
    let request = c.start(now(), &Jid::new(BOT).unwrap(), Mode::Four).unwrap().send.remove(0);
    let sealed = lates[0].1.chat(&bot_bare, "sealed", EncryptOptions::default()).unwrap();
    // Delivered once as it should (the session's counters stay in step), then copied.
    assert_eq!(bot.handle(&lates[0].0, sealed.clone()).messages, 1);
    let error = esession_forms::xml::parse(
        "<message xmlns='jabber:client' type='error'><thread>esession-0000000000000000</thread>\
         <error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    )
    .unwrap();
    let kinds = [request, sealed, error];
    // First with the failure budget off: every flood stanza is handled.
    bot.query(format!("F{}", u32::MAX).as_bytes());
    let mut per_kind = [0.0; 3];
    for (k, s) in kinds.iter().enumerate() {
        let t = cpu(bot);
        for _ in 0..rounds {
            bot.handle(FLOODER, s.clone());
        }
        per_kind[k] = (cpu(bot) - t) as f64 / rounds as f64;
    }
    let t = cpu(bot);
    for i in 0..rounds {
        for j in 0..10 {
            bot.handle(FLOODER, kinds[(i + j) % 3].clone());
        }
        legit(bot, lates, i);
    }
    let with = (cpu(bot) - t) as f64 / rounds as f64;
    // Then with the default budget, spent by the flood's first stanzas: the rest is dropped
    // unread.
    bot.query(format!("F{}", Limits::default().failures_per_minute).as_bytes());
    for i in 0..2 * Limits::default().failures_per_minute as usize {
        bot.handle(FLOODER, kinds[i % 3].clone());
    }
    let t = cpu(bot);
    for i in 0..rounds {
        bot.handle(FLOODER, kinds[i % 3].clone());
    }
    let cut = (cpu(bot) - t) as f64 / rounds as f64;
    let t = cpu(bot);
    for i in 0..rounds {
        for j in 0..10 {
            bot.handle(FLOODER, kinds[(i + j) % 3].clone());
        }
        legit(bot, lates, i);
    }
    let with_cut = (cpu(bot) - t) as f64 / rounds as f64;
    (alone / 1e3, per_kind.map(|v| v / 1e3), with / alone, with_cut / alone, cut / 1e3)
}

// ---------------------------------------------------------------------------------------------
// Through the server.

struct Wire {
    size: usize,
    enc_per_s: f64,
    clear_per_s: f64,
    enc_p50: f64,
    enc_p99: f64,
    clear_p50: f64,
    clear_p99: f64,
    /// CPU per message (µs) of the two clients and of the server: encrypted, clear.
    client_cpu: (f64, f64),
    server_cpu: (f64, f64),
}

async fn login(
    port: u16,
    user: &str,
    key: PrivateKey,
    peer: &str,
    peer_key: esession_crypto::PublicKey,
) -> (Client, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("esession-load-{}-{user}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let account = Account::open(&dir, Sealing::KeyFile).unwrap();
    account.set_identity(&key, true).unwrap();
    account.trust(&Jid::new(&format!("{peer}@localhost")).unwrap().to_bare(), peer_key).unwrap();
    let mut o =
        Options::new(&format!("{user}@localhost/load"), "correct horse", &format!("127.0.0.1:{port}"));
    o.timeout = Duration::from_secs(60);
    (Client::connect(o, account).await.unwrap(), dir)
}

fn body_of(size: usize, i: usize) -> String {
    let mut s = format!("{i:08} ");
    while s.len() < size {
        s.push('x');
    }
    s
}

/// Where a client's time per message goes, in memory (no server, no I/O): for one message of
/// `size` octets (the text of the server run), encrypted in a session and in clear, the time
/// (µs) to make the stanza (for the encrypted one: `Engine::chat`, which encrypts and MACs), to
/// serialize it, to parse it back, and for the receiving engine to handle it (for the
/// encrypted one: check the MAC, decrypt, parse the content); and its octets on the wire.
struct Breakdown {
    size: usize,
    /// [make, serialize, parse, handle, octets]: encrypted, clear.
    enc: [f64; 5],
    clear: [f64; 5],
}

fn breakdown(key: &PrivateKey, size: usize, n: usize) -> Breakdown {
    let mut bot = Engine::new(config(bot_key()), {
        let mut stores = EngineStores::in_memory();
        let mut trust = esession_negotiate::MemoryTrust::default();
        trust.trust(&Jid::new("contact@example.org").unwrap().to_bare(), key.public_key());
        stores.trust = Box::new(trust);
        stores
    });
    let mut c = contact(key);
    let me = "contact@example.org/load";
    // The 4-message negotiation, relayed by hand.
    let mut to_bot = c.start(now(), &Jid::new(BOT).unwrap(), Mode::Four).unwrap().send;
    while !to_bot.is_empty() {
        let mut to_me = Vec::new();
        for mut s in to_bot.drain(..) {
            set(&mut s, "from", me);
            to_me.extend(bot.handle(now(), &s).send);
        }
        for mut s in to_me {
            set(&mut s, "from", BOT);
            to_bot.extend(c.handle(now(), &s).send);
        }
    }
    let bot_bare = Jid::new(BOT).unwrap().to_bare();
    let bot_full = Jid::new(BOT).unwrap();
    let mut measure = |encrypted: bool| -> [f64; 5] {
        let mut t = [0.0f64; 5];
        for i in 0..n {
            let text = body_of(size, i);
            let t0 = Instant::now();
            let mut m = if encrypted {
                c.chat(&bot_bare, &text, EncryptOptions::default()).unwrap()
            } else {
                clear_message(&bot_full, &text)
            };
            set(&mut m, "from", me);
            let t1 = Instant::now();
            let wire = String::from(&m);
            let t2 = Instant::now();
            let back: Element = wire.parse().unwrap();
            let t3 = Instant::now();
            let step = bot.handle(now(), &back);
            let t4 = Instant::now();
            assert!(step.events.iter().any(|e| matches!(e, Event::Message { .. } | Event::Clear { .. })));
            for (k, d) in [t1 - t0, t2 - t1, t3 - t2, t4 - t3].into_iter().enumerate() {
                t[k] += d.as_secs_f64() * 1e6;
            }
            t[4] += wire.len() as f64;
        }
        t.map(|x| x / n as f64)
    };
    // Alternate, best (lowest total) of three each.
    let (mut enc, mut clear) = ([f64::MAX; 5], [f64::MAX; 5]);
    for _ in 0..3 {
        for (encrypted, best) in [(false, &mut clear), (true, &mut enc)] {
            let r = measure(encrypted);
            if r[..4].iter().sum::<f64>() < best[..4].iter().sum::<f64>() {
                *best = r;
            }
        }
    }
    Breakdown { size, enc, clear }
}

fn clear_message(to: &Jid, text: &str) -> Element {
    let mut m = esession_xmpp::engine::body_message(text);
    set(&mut m, "to", to.as_str());
    m
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

async fn receive(b: &mut Client, n: usize, encrypted: bool) {
    let mut got = 0;
    while got < n {
        match b.next_event().await.unwrap() {
            Event::Message { .. } if encrypted => got += 1,
            Event::Clear { stanza, .. } if !encrypted && stanza.name() == "message" => got += 1,
            _ => {}
        }
    }
}

/// CPU time (user + system) of process `pid` ("self" for this one), in microseconds, from
/// /proc (clock ticks of 10 ms: read over whole bursts only).
fn cpu_us(pid: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name in parentheses, from field 3 (the state):
    // utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (field(11) + field(12)) * 10_000
}

/// The server's process id, when xtask gave it.
fn server_pid() -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == "--server-pid").and_then(|i| args.get(i + 1)).cloned()
}

/// One burst: messages per second, and CPU per message (µs) of this process (both clients) and
/// of the server.
async fn burst(
    a: &mut Client,
    b: &mut Client,
    to: &Jid,
    size: usize,
    n: usize,
    encrypted: bool,
) -> (f64, f64, f64) {
    let srv = server_pid();
    let c0 = (cpu_us("self"), srv.as_deref().map_or(0, cpu_us));
    let t = Instant::now();
    let send = async {
        for i in 0..n {
            let text = body_of(size, i);
            if encrypted {
                a.send_text(to, &text).await.unwrap();
            } else {
                a.send_clear(clear_message(to, &text)).await.unwrap();
            }
        }
    };
    tokio::join!(send, receive(b, n, encrypted));
    let rate = n as f64 / t.elapsed().as_secs_f64();
    let c1 = (cpu_us("self"), srv.as_deref().map_or(0, cpu_us));
    (rate, (c1.0 - c0.0) as f64 / n as f64, (c1.1 - c0.1) as f64 / n as f64)
}

async fn latencies(
    a: &mut Client,
    b: &mut Client,
    to: &Jid,
    size: usize,
    n: usize,
    encrypted: bool,
) -> Vec<f64> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let text = body_of(size, i);
        let t = Instant::now();
        if encrypted {
            a.send_text(to, &text).await.unwrap();
        } else {
            a.send_clear(clear_message(to, &text)).await.unwrap();
        }
        receive(b, 1, encrypted).await;
        v.push(t.elapsed().as_secs_f64() * 1e3);
    }
    v
}

async fn through_server(port: u16, quick: bool, key: &PrivateKey) -> (Vec<Wire>, f64) {
    let pem = key.to_pkcs8_pem().unwrap();
    let (mut a, da) = login(port, "alice", bot_key(), "bob", key.public_key()).await;
    let (mut b, db) =
        login(port, "bob", PrivateKey::from_pkcs8_pem(&pem).unwrap(), "alice", bot_key().public_key()).await;
    let bob = b.jid().clone();
    // Time to the first message, negotiation included (disco, 4-message, one message).
    let t = Instant::now();
    let (sas, got) = tokio::join!(
        a.negotiate(&bob, Mode::Four),
        b.wait_for(|e| matches!(e, Event::Negotiated { offline: false, .. }))
    );
    sas.unwrap();
    got.unwrap();
    let (sent, ()) = tokio::join!(a.send_text(&bob, "first"), receive(&mut b, 1, true));
    sent.unwrap();
    let first_ms = t.elapsed().as_secs_f64() * 1e3;
    let (n, l) = if quick { (300, 100) } else { (3000, 1000) };
    let mut out = Vec::new();
    for size in [200, 4096] {
        // Alternate, best of two each, so that drift hits both sides alike.
        let mut enc = (0.0, 0.0, 0.0);
        let mut clear = (0.0, 0.0, 0.0);
        for _ in 0..2 {
            let c = burst(&mut a, &mut b, &bob, size, n, false).await;
            if c.0 > clear.0 {
                clear = c;
            }
            let e = burst(&mut a, &mut b, &bob, size, n, true).await;
            if e.0 > enc.0 {
                enc = e;
            }
        }
        let mut le = latencies(&mut a, &mut b, &bob, size, l, true).await;
        let mut lc = latencies(&mut a, &mut b, &bob, size, l, false).await;
        out.push(Wire {
            size,
            enc_per_s: enc.0,
            clear_per_s: clear.0,
            client_cpu: (enc.1, clear.1),
            server_cpu: (enc.2, clear.2),
            enc_p50: percentile(&mut le, 0.5),
            enc_p99: percentile(&mut le, 0.99),
            clear_p50: percentile(&mut lc, 0.5),
            clear_p99: percentile(&mut lc, 0.99),
        });
    }
    let _ = a.disconnect().await;
    let _ = b.disconnect().await;
    let _ = std::fs::remove_dir_all(da);
    let _ = std::fs::remove_dir_all(db);
    (out, first_ms)
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("bot") {
        bot(&args[1], args[2].parse().unwrap());
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let port: Option<u16> =
        args.iter().position(|a| a == "--port").and_then(|i| args.get(i + 1)).and_then(|p| p.parse().ok());
    // `--sizes 100,1000`: other numbers of contacts (for profiling).
    let given: Option<Vec<usize>> = args
        .iter()
        .position(|a| a == "--sizes")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect());
    // `--server-only NAME`: only the run through the server (a second server, named NAME).
    let server_only: Option<&str> =
        args.iter().position(|a| a == "--server-only").and_then(|i| args.get(i + 1)).map(String::as_str);
    let sizes: &[usize] = match &given {
        _ if server_only.is_some() => &[],
        Some(v) => v,
        None if quick => &[100],
        None => &[100, 1000, 10_000],
    };
    let k = if server_only.is_some() { 1 } else { keys_for(sizes.iter().copied().max().unwrap_or(100)) };
    eprintln!("load: generating {k} contact keys");
    // On both cores: RSA key generation is the slow part of a 10,000-contact run's set-up.
    let half = k.div_ceil(2);
    let other = std::thread::spawn(move || {
        (0..k - half).map(|_| PrivateKey::generate_rsa(&mut os_rng(), 2048).unwrap()).collect::<Vec<_>>()
    });
    let mut keys: Vec<PrivateKey> =
        (0..half).map(|_| PrivateKey::generate_rsa(&mut os_rng(), 2048).unwrap()).collect();
    keys.extend(other.join().unwrap());
    let keyfile = std::env::temp_dir().join(format!("esession-load-keys-{}", std::process::id()));
    let pems: Vec<String> = keys.iter().map(|k| k.to_pkcs8_pem().unwrap().to_string()).collect();
    std::fs::write(&keyfile, pems.join(SPLIT)).unwrap();
    let keyfile_s = keyfile.to_str().unwrap().to_owned();
    let contact_key = PrivateKey::from_pkcs8_pem(&pems[0]).unwrap();
    let mut mem = Vec::new();
    for &n in sizes {
        eprintln!("load: {n} contacts in memory");
        let m = in_memory(n, &keyfile_s, &keys);
        println!("FIG mem.session.{n} {:.0}", m.per_session);
        println!("FIG mem.pending.{n} {:.0}", m.per_pending);
        println!("FIG negotiation.bot_ms.{n} {:.3}", m.bot_ms_per_negotiation);
        println!("FIG negotiation.primitives_ms.{n} {:.3}", m.primitives_ms);
        println!("FIG first_message_ms.{n} {:.2}", m.first_message_ms);
        println!("FIG flood.factor.{n} {:.2}", m.flood_factor);
        println!("FIG flood.factor_cut.{n} {:.2}", m.flood_factor_cut);
        mem.push(m);
    }
    let wire = port.map(|p| {
        eprintln!("load: through the server on port {p}");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(through_server(p, quick, &contact_key))
    });
    if let Some((w, first)) = &wire {
        println!("FIG server.first_message_ms {first:.2}");
        for x in w {
            println!("FIG server.enc_per_s.{} {:.0}", x.size, x.enc_per_s);
            println!("FIG server.clear_per_s.{} {:.0}", x.size, x.clear_per_s);
        }
    }
    let costs: Vec<Breakdown> = [200, 4096]
        .into_iter()
        .map(|size| breakdown(&contact_key, size, if quick { 2_000 } else { 20_000 }))
        .collect();
    for b in &costs {
        let total = |x: &[f64; 5]| x[..4].iter().sum::<f64>();
        println!("FIG client.enc_us.{} {:.2}", b.size, total(&b.enc));
        println!("FIG client.clear_us.{} {:.2}", b.size, total(&b.clear));
    }
    let _ = std::fs::remove_file(&keyfile);
    // The section for docs/performance.md.
    println!("BEGIN-SECTION");
    if let Some(name) = server_only {
        match &wire {
            Some((w, first)) => server_table(name, w, *first),
            None => println!("\nNo server run (no --port)."),
        }
        println!("END-SECTION");
        return;
    }
    println!(
        "Run of `cargo xtask load`{} on {}: the bot a process of its own, contacts in the driver process; \
         group 14, RSA-2048 identities, 4-message negotiations, the bot's key pool on (depth 64).\n",
        if quick { " --quick" } else { "" },
        chrono::Utc::now().format("%Y-%m-%d")
    );
    println!(
        "| contacts N | memory per session | per pending negotiation | bot CPU per negotiation | its primitives (agree + sign + verify) | ratio (goal <= 1.3) | pool misses | time to first message, new contact (in memory) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for m in &mem {
        println!(
            "| {} | {:.1} KiB | {:.1} KiB | {:.2} ms ({:.0}/s) | {:.2} ms | {:.2}x | {} | {:.1} ms |",
            m.n,
            m.per_session / 1024.0,
            m.per_pending / 1024.0,
            m.bot_ms_per_negotiation,
            1e3 / m.bot_ms_per_negotiation,
            m.primitives_ms,
            m.bot_ms_per_negotiation / m.primitives_ms,
            m.pool_missed,
            m.first_message_ms
        );
    }
    println!(
        "\nFlood isolation, in the bot: its time per message of a contact with a session, and per stanza of a flood from one stranger (one real request repeated: the first makes a responder, the rest are over the rate limit, `Limits::requests_per_minute` = 12; a real `<c/>` of another contact's session; an error stanza on a thread of nobody's), each handled (the failure budget off); the factor is its time per legitimate message with ten flood stanzas in between, flood included, over the time alone: with every flood stanza handled (what the first `Limits::failures_per_minute` = 30 failing stanzas of a contact per minute cost), and once the flooder has spent that budget (its stanzas dropped unread).\n"
    );
    println!(
        "| contacts N | message of a contact | repeated request | `<c/>` without a session | error stanza | flood stanza, cut off | factor, 10 flood stanzas per message, handled | the same, cut off |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for m in &mem {
        println!(
            "| {} | {:.1} µs | {:.1} µs | {:.1} µs | {:.1} µs | {:.2} µs | {:.2}x | {:.2}x |",
            m.n,
            m.legit_us,
            m.flood_us[0],
            m.flood_us[1],
            m.flood_us[2],
            m.cut_us,
            m.flood_factor,
            m.flood_factor_cut
        );
    }
    costs_table(&costs);
    match &wire {
        Some((w, first)) => server_table("Prosody", w, *first),
        None => println!("\nNo server run (no --port)."),
    }
    println!("END-SECTION");
}

/// Where a client's time per message goes (see [`Breakdown`]).
fn costs_table(costs: &[Breakdown]) {
    println!(
        "\nWhere a client's time per message goes, in memory (the text of the server run; make: the stanza, for the encrypted one `Engine::chat`, which encrypts and MACs; serialize and parse: minidom/rxml, as tokio-xmpp does on each side; handle: the receiving engine, for the encrypted one MAC check, decryption and the content's parse), µs per message, encrypted / clear:\n"
    );
    println!(
        "| size | make | serialize | parse | handle | total | ratio clear / encrypted | octets on the wire |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for b in costs {
        let (e, c) = (&b.enc, &b.clear);
        let (te, tc) = (e[..4].iter().sum::<f64>(), c[..4].iter().sum::<f64>());
        println!(
            "| {} B | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.1} / {:.1} | {:.2}x | {:.0} / {:.0} |",
            b.size,
            e[0],
            c[0],
            e[1],
            c[1],
            e[2],
            c[2],
            e[3],
            c[3],
            te,
            tc,
            tc / te,
            e[4],
            c[4]
        );
    }
}

/// The table of the run through the server `name`.
fn server_table(name: &str, w: &[Wire], first: f64) {
    println!(
        "\nThrough {name} on loopback (two clients in one process, current-thread runtime), time to the first message including disco and the 4-message negotiation: {first:.1} ms.\n"
    );
    println!(
        "| size | encrypted msg/s | clear msg/s | ratio (goal >= 0.8) | encrypted p50 / p99 | clear p50 / p99 | both clients' CPU per message, encrypted / clear | server's CPU per message, encrypted / clear |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for x in w {
        println!(
            "| {} B | {:.0} | {:.0} | {:.2}x | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.0} / {:.0} µs | {:.0} / {:.0} µs |",
            x.size,
            x.enc_per_s,
            x.clear_per_s,
            x.enc_per_s / x.clear_per_s,
            x.enc_p50,
            x.enc_p99,
            x.clear_p50,
            x.clear_p99,
            x.client_cpu.0,
            x.client_cpu.1,
            x.server_cpu.0,
            x.server_cpu.1
        );
    }
}
