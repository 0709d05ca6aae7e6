//! A workaround for a parsing bug of xmpp-parsers 0.23 (the generation of tokio-xmpp 6): its
//! stream-management `<failed/>` (XEP-0198 §4, §5) requires an `h` attribute, which the XEP
//! makes optional and Prosody's mod_smacks leaves out when the session to resume is unknown
//! (after a server restart, or once it expired). tokio-xmpp then takes the server's answer for
//! a broken stream, drops the connection and connects again at once, keeping the resumption
//! state: a loop of hundreds of logins a second that never ends (`tests/e2e.rs`,
//! `a_server_restart_ends_online_sessions_and_the_clients_reconnect_by_themselves`, against
//! Prosody with mod_smacks).
//!
//! [`SmFailedFix`] sits between the socket (or TLS) and tokio-xmpp's XML parser and writes
//! ` h='0'` into a `<failed xmlns='urn:xmpp:sm:3'>` start tag that has no other attribute. The
//! value is only an optimization hint for the client (tokio-xmpp ignores it when it cannot use
//! it); the answer is then read as a failed resumption, and the client binds a new resource, as
//! XEP-0198 §5 says. Only a start tag can match: in XML character data `<` is always escaped,
//! and inside an encrypted stanza everything is Base64; a peer's clear stanza that carries such
//! an element as a child gets the attribute too (harmless: nothing signs or encrypts it). What
//! it holds back between two reads is at most the length of that tag. Remove it once
//! xmpp-parsers accepts the element.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The start tags that are rewritten (Prosody writes single quotes; double quotes as well).
const TAGS: [&[u8]; 2] = [b"<failed xmlns='urn:xmpp:sm:3'", b"<failed xmlns=\"urn:xmpp:sm:3\""];

/// A stream that adds `h='0'` to a stream-management `<failed>` without attributes.
#[derive(Debug)]
pub(crate) struct SmFailedFix<S> {
    inner: S,
    /// Read but not yet examined to the end (a possible start of a tag).
    held: Vec<u8>,
    /// Examined, waiting to be read.
    out: Vec<u8>,
    pos: usize,
}

impl<S> SmFailedFix<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner, held: Vec::new(), out: Vec::new(), pos: 0 }
    }
}

/// Rewrites what can be decided in `buf`; returns it, and the tail that must wait for more
/// octets (a prefix of a tag, or a whole tag whose next octet is unknown).
fn rewrite(buf: &[u8], eof: bool) -> (Vec<u8>, Vec<u8>) {
    let mut out = Vec::with_capacity(buf.len() + 8);
    let mut i = 0;
    while i < buf.len() {
        if buf[i] != b'<' {
            out.push(buf[i]);
            i += 1;
            continue;
        }
        let rest = &buf[i..];
        let mut waiting = false;
        let mut matched = None;
        for tag in TAGS {
            if rest.len() > tag.len() && rest.starts_with(tag) {
                matched = Some(tag.len());
            } else if !eof && tag.starts_with(&rest[..rest.len().min(tag.len())]) {
                // Too short to tell (a prefix of the tag, or the tag without its next octet).
                waiting = true;
            }
        }
        if let Some(n) = matched {
            out.extend_from_slice(&rest[..n]);
            // No other attribute: `>` or `/>` follows at once.
            if matches!(rest[n], b'>' | b'/') {
                out.extend_from_slice(b" h='0'");
            }
            i += n;
        } else if waiting {
            return (out, rest.to_vec());
        } else {
            out.push(b'<');
            i += 1;
        }
    }
    (out, Vec::new())
}

impl<S: AsyncRead + Unpin> AsyncRead for SmFailedFix<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if this.pos < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.pos);
                buf.put_slice(&this.out[this.pos..this.pos + n]);
                this.pos += n;
                if this.pos == this.out.len() {
                    this.out.clear();
                    this.pos = 0;
                }
                return Poll::Ready(Ok(()));
            }
            let mut tmp = [0u8; 8192];
            let mut rb = ReadBuf::new(&mut tmp);
            match Pin::new(&mut this.inner).poll_read(cx, &mut rb) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let eof = rb.filled().is_empty();
            if eof && this.held.is_empty() {
                return Poll::Ready(Ok(()));
            }
            this.held.extend_from_slice(rb.filled());
            let (out, held) = rewrite(&this.held, eof);
            this.out = out;
            this.held = held;
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SmFailedFix<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A reader that hands out its chunks one per read.
    struct Chunks(Vec<Vec<u8>>);

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if !self.0.is_empty() {
                let c = self.0.remove(0);
                buf.put_slice(&c);
            }
            Poll::Ready(Ok(()))
        }
    }

    async fn through(chunks: Vec<Vec<u8>>) -> String {
        // An empty read is the end of the stream.
        let chunks = chunks.into_iter().filter(|c| !c.is_empty()).collect();
        let mut out = Vec::new();
        SmFailedFix::new(Chunks(chunks)).read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn an_sm_failed_without_h_gets_one_at_every_split() {
        let cases = [
            (
                "<a/><failed xmlns='urn:xmpp:sm:3'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
                "<a/><failed xmlns='urn:xmpp:sm:3' h='0'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></failed>",
            ),
            ("<failed xmlns=\"urn:xmpp:sm:3\"/>x", "<failed xmlns=\"urn:xmpp:sm:3\" h='0'/>x"),
            // Left as they are: one with h, other elements, text, a bare '<' at the end.
            ("<failed xmlns='urn:xmpp:sm:3' h='7'/>", "<failed xmlns='urn:xmpp:sm:3' h='7'/>"),
            (
                "<failed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
                "<failed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
            ),
            (
                "<body>&lt;failed xmlns='urn:xmpp:sm:3'&gt;</body><",
                "<body>&lt;failed xmlns='urn:xmpp:sm:3'&gt;</body><",
            ),
            ("<fail", "<fail"),
        ];
        for (input, want) in cases {
            let b = input.as_bytes();
            assert_eq!(through(vec![b.to_vec()]).await, want, "{input}");
            for cut in 0..=b.len() {
                assert_eq!(
                    through(vec![b[..cut].to_vec(), b[cut..].to_vec()]).await,
                    want,
                    "{input} cut at {cut}"
                );
            }
            let bytes: Vec<Vec<u8>> = b.iter().map(|&c| vec![c]).collect();
            assert_eq!(through(bytes).await, want, "{input} one octet at a time");
        }
    }
}
