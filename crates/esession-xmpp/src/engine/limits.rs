//! The bounds the engine keeps on what the network can make it hold or do.

use esession_forms::xml;

/// Limits on pending work; [`Limits::default`] is what a client needs, within the memory a
/// flood may cost (docs/security.md, "Resources").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Bounds on any stanza handed to the engine: beyond them it is dropped unread
    /// ([`xml::Limits::STANZA`]).
    pub stanza: xml::Limits,
    /// A negotiation not complete after this long is dropped (its DH secret with it).
    pub pending_timeout: chrono::Duration,
    /// Negotiations in progress at once, over all contacts (one per contact at most); beyond,
    /// the oldest is dropped.
    pub pending_total: usize,
    /// Requests a contact may start per minute (a burst of as many is allowed); beyond, they
    /// are dropped unanswered.
    pub requests_per_minute: u32,
    /// Stanzas held while away (the harness's offline mode); beyond, they are dropped
    /// ([`crate::Failure::QueueFull`]).
    pub queue: usize,
    /// Octets held while away, counted as names, attributes and text plus 256 per element;
    /// beyond, stanzas are dropped ([`crate::Failure::QueueFull`]).
    pub queue_octets: usize,
    /// A session request larger than this (octets of names, attributes and text) is dropped
    /// unanswered before any negotiation state is kept ([`crate::Failure::TooLarge`]): a genuine
    /// request, even a 3-message one offering every group, is a few kilobytes.
    pub request_octets: usize,
    /// Octets all negotiations in progress may hold (their requests, as measured on
    /// arrival, plus a fixed amount each); beyond, the oldest are dropped
    /// ([`crate::Failure::Overloaded`]).
    pub pending_octets: usize,
    /// Contacts we know nothing about (no key, session, offline session or options) whose
    /// presence is remembered; beyond, the one remembered longest ago is forgotten.
    pub strangers: usize,
    /// Available resources remembered per contact; beyond, the one seen longest ago is
    /// forgotten.
    pub resources: usize,
    /// Sessions open at once; beyond, the oldest idle one is closed.
    pub sessions: usize,
    /// Failed stanzas a contact may cause per minute (a burst of as many): a request over
    /// [`Limits::requests_per_minute`], a stanza of no session or negotiation, an error stanza
    /// about nothing of ours, a negotiation or session stanza that fails its checks, one beyond
    /// the size limits. Beyond, every stanza of that contact (bare JID) is dropped unread, at
    /// the cost of a hash lookup, until its budget refills (one more per `60 / n` seconds;
    /// [`crate::Failure::Flooded`] says so once). Our own account and servers (JIDs without a
    /// local part) are never cut off. Senders tracked at once are bounded by
    /// [`Limits::strangers`].
    pub failures_per_minute: u32,
    /// Offline messages held for a trust decision at once ([`crate::Event::Untrusted`]: from
    /// keys not trusted, waiting in the inbox); beyond, another is dropped
    /// ([`crate::Failure::HeldFull`]) until the user trusts or refuses some. Anyone who may
    /// read the options published for everyone can send such messages.
    pub held: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            stanza: xml::Limits::STANZA,
            pending_timeout: chrono::Duration::seconds(120),
            pending_total: 1024,
            requests_per_minute: 12,
            queue: 10_000,
            queue_octets: 16 << 20,
            request_octets: 64 << 10,
            pending_octets: 16 << 20,
            strangers: 4096,
            resources: 32,
            sessions: 100_000,
            failures_per_minute: 30,
            held: 1000,
        }
    }
}

impl Limits {
    /// The defaults (see the fields).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// With this negotiation timeout.
    #[must_use]
    pub fn with_pending_timeout(mut self, t: chrono::Duration) -> Self {
        self.pending_timeout = t;
        self
    }

    /// With this cap on negotiations in progress.
    #[must_use]
    pub fn with_pending_total(mut self, n: usize) -> Self {
        self.pending_total = n;
        self
    }

    /// With this rate of requests per contact.
    #[must_use]
    pub fn with_requests_per_minute(mut self, n: u32) -> Self {
        self.requests_per_minute = n;
        self
    }

    /// With this cap on stanzas held while away (count and octets).
    #[must_use]
    pub fn with_queue(mut self, stanzas: usize, octets: usize) -> Self {
        self.queue = stanzas;
        self.queue_octets = octets;
        self
    }

    /// With these caps on requests: the largest one answered, and the octets all negotiations
    /// in progress may hold.
    #[must_use]
    pub fn with_request_octets(mut self, request: usize, pending: usize) -> Self {
        self.request_octets = request;
        self.pending_octets = pending;
        self
    }

    /// With these caps on presence: strangers remembered, resources per contact.
    #[must_use]
    pub fn with_presence(mut self, strangers: usize, resources: usize) -> Self {
        self.strangers = strangers;
        self.resources = resources;
        self
    }

    /// With this cap on open sessions.
    #[must_use]
    pub fn with_sessions(mut self, n: usize) -> Self {
        self.sessions = n;
        self
    }

    /// With this budget of failed stanzas per contact and minute.
    #[must_use]
    pub fn with_failures_per_minute(mut self, n: u32) -> Self {
        self.failures_per_minute = n;
        self
    }

    /// With this cap on offline messages held for a trust decision.
    #[must_use]
    pub fn with_held(mut self, n: usize) -> Self {
        self.held = n;
        self
    }
}

/// A token bucket: `capacity` tokens, refilled at `capacity` per minute.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket {
    tokens: f64,
    at: chrono::DateTime<chrono::Utc>,
}

impl Bucket {
    pub(crate) fn new(capacity: u32, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self { tokens: f64::from(capacity), at: now }
    }

    /// Takes a token if there is one.
    pub(crate) fn take(&mut self, capacity: u32, now: chrono::DateTime<chrono::Utc>) -> bool {
        let elapsed = (now - self.at).num_milliseconds().max(0) as f64 / 60_000.0;
        self.tokens = (self.tokens + elapsed * f64::from(capacity)).min(f64::from(capacity));
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether a token is there (without taking it).
    pub(crate) fn available(&self, capacity: u32, now: chrono::DateTime<chrono::Utc>) -> bool {
        let elapsed = (now - self.at).num_milliseconds().max(0) as f64 / 60_000.0;
        self.tokens + elapsed * f64::from(capacity) >= 1.0
    }

    /// Whether the bucket is full again (it can be forgotten).
    pub(crate) fn full(&self, capacity: u32, now: chrono::DateTime<chrono::Utc>) -> bool {
        let elapsed = (now - self.at).num_milliseconds().max(0) as f64 / 60_000.0;
        self.tokens + elapsed * f64::from(capacity) >= f64::from(capacity)
    }
}
