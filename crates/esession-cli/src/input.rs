//! What `chat` reads and how it prints while the user types.
//!
//! On a terminal, lines are read by a line editor (rustyline) in raw mode: the terminal's
//! canonical mode would cut a pasted line at 4095 octets (Linux's `N_TTY_BUF_SIZE`), raw mode
//! has no such limit; incoming messages are printed above the line being typed, which is kept.
//! Otherwise (a pipe, a file) lines are read as octets. Either way a line that is not UTF-8 is
//! reported ([`Input::NotUtf8`]) and reading goes on, and a line longer than [`MAX_LINE`] octets
//! is reported ([`Input::TooLong`]) rather than sent (servers refuse stanzas beyond their limit,
//! often by closing the connection).

use std::io::{BufRead, IsTerminal, Write};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc::UnboundedSender;

/// The longest line sent, in octets: once encrypted and encoded (a third more) it stays well
/// under the 256 KiB stanza limit of Prosody and ejabberd.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// One thing the user typed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// A line (without its end of line).
    Line(String),
    /// A line that is not UTF-8: not sent.
    NotUtf8,
    /// A line longer than [`MAX_LINE`] octets (its length): not sent.
    TooLong(usize),
    /// Ctrl-C.
    Interrupt,
    /// End of input (Ctrl-D on an empty line, or the end of a pipe).
    Eof,
}

/// Where `chat` prints: through the line editor (above the line being typed), or plainly.
#[derive(Clone)]
pub(crate) struct Printer {
    editor: Option<Arc<Mutex<Box<dyn rustyline::ExternalPrinter + Send>>>>,
}

impl Printer {
    /// Plain lines on standard output.
    pub(crate) fn plain() -> Self {
        Self { editor: None }
    }

    /// Prints one line (a line feed is added).
    pub(crate) fn line(&self, text: &str) {
        if let Some(p) = &self.editor
            && let Ok(mut p) = p.lock()
            && p.print(format!("{text}\n")).is_ok()
        {
            return;
        }
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// Stops printing through the editor (its thread may be gone).
    pub(crate) fn detach(&mut self) {
        self.editor = None;
    }
}

/// The terminal's settings when `chat` started, restored when it ends (the editor's thread may
/// still hold raw mode then).
pub(crate) struct TermGuard {
    #[cfg(unix)]
    saved: Option<nix::sys::termios::Termios>,
}

impl TermGuard {
    fn save() -> Self {
        #[cfg(unix)]
        {
            Self { saved: nix::sys::termios::tcgetattr(std::io::stdin()).ok() }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(t) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, t);
        }
    }
}

/// Whether `chat` reads from a terminal through the line editor.
pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The prompt, changed while a line is being typed: the editor reads it at each repaint (after
/// each message printed above the line). Its width must not change while a line is typed (the
/// editor keeps the cursor's column): [`LivePrompt::set`] is given prompts of one width.
#[derive(Clone)]
pub(crate) struct LivePrompt {
    now: Arc<Mutex<&'static str>>,
    /// Every prompt shown so far, kept for the life of the process (a chat shows a handful).
    made: Arc<Mutex<std::collections::HashMap<String, &'static str>>>,
}

impl LivePrompt {
    pub(crate) fn new() -> Self {
        Self { now: Arc::new(Mutex::new("> ")), made: Arc::default() }
    }

    pub(crate) fn set(&self, text: String) {
        let Ok(mut made) = self.made.lock() else { return };
        let p: &'static str = match made.get(&text) {
            Some(p) => p,
            None => {
                // Leaked on purpose: the editor needs a `&str` that outlives the lock; each
                // distinct prompt is leaked once (a few per chat).
                let p: &'static str = Box::leak(text.clone().into_boxed_str());
                made.insert(text, p);
                p
            }
        };
        if let Ok(mut now) = self.now.lock() {
            *now = p;
        }
    }
}

impl rustyline::Prompt for LivePrompt {
    fn raw(&self) -> &str {
        self.now.lock().map(|p| *p).unwrap_or("> ")
    }
}

/// Starts reading standard input on a thread of its own; every line goes to `tx`. On a
/// terminal and with `editor`, `prompt` is shown before the line being typed.
pub(crate) fn start(
    prompt: LivePrompt,
    tx: UnboundedSender<Input>,
    editor: bool,
) -> (Printer, Option<TermGuard>) {
    if editor && interactive() {
        let config = rustyline::Config::builder().auto_add_history(true).build();
        if let Ok(mut ed) = rustyline::DefaultEditor::with_config(config)
            && let Ok(p) = ed.create_external_printer()
        {
            let guard = TermGuard::save();
            let p: Box<dyn rustyline::ExternalPrinter + Send> = Box::new(p);
            let printer = Printer { editor: Some(Arc::new(Mutex::new(p))) };
            std::thread::spawn(move || edit(ed, &prompt, &tx));
            return (printer, Some(guard));
        }
    }
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut r = stdin.lock();
        loop {
            let i = read_line(&mut r);
            let end = i == Input::Eof;
            if tx.send(i).is_err() || end {
                break;
            }
        }
    });
    (Printer::plain(), None)
}

/// The prompt of the rest of a line that is not UTF-8: what is typed on it up to Enter is
/// refused with the line.
const REFUSING: &str = "!! not UTF-8: this line is NOT sent (Enter ends it)> ";

/// The editor's loop.
fn edit(mut ed: rustyline::DefaultEditor, prompt: &LivePrompt, tx: &UnboundedSender<Input>) {
    use rustyline::error::ReadlineError;
    // After an octet that is not UTF-8 the editor gives up on the line (and may drop what it had
    // read beyond, the rest of a paste); what is typed next, up to Enter, is still that line:
    // it is read on a prompt that says so and refused with it, never sent as a line of its own.
    let mut rest_of_bad_line = false;
    loop {
        let read = if rest_of_bad_line { ed.readline(REFUSING) } else { ed.readline(prompt) };
        let i = match read {
            Ok(_) if rest_of_bad_line => {
                rest_of_bad_line = false;
                Input::NotUtf8
            }
            Ok(line) if line.len() > MAX_LINE => Input::TooLong(line.len()),
            Ok(line) => {
                // Leaving: no prompt after it.
                let quit = matches!(line.trim(), "/quit" | "/exit" | "/q");
                if tx.send(Input::Line(line)).is_err() || quit {
                    break;
                }
                continue;
            }
            Err(ReadlineError::Interrupted) => Input::Interrupt,
            Err(ReadlineError::Eof) => Input::Eof,
            Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                rest_of_bad_line = true;
                continue;
            }
            // A resized window, an interrupted read: the line goes on.
            Err(ReadlineError::Signal(_)) => continue,
            Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => Input::Eof,
        };
        let end = matches!(i, Input::Eof | Input::Interrupt);
        if tx.send(i).is_err() || end {
            break;
        }
    }
}

/// Reads one line of octets, bounded: at most [`MAX_LINE`] octets are kept, the rest of a longer
/// line is skipped.
pub(crate) fn read_line(r: &mut impl BufRead) -> Input {
    let mut line = Vec::new();
    let mut len = 0usize;
    loop {
        let (done, used) = match r.fill_buf() {
            Ok([]) => {
                if len == 0 {
                    return Input::Eof;
                }
                (true, 0)
            }
            Ok(buf) => match buf.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    if len + i <= MAX_LINE {
                        line.extend_from_slice(&buf[..i]);
                    }
                    len += i;
                    (true, i + 1)
                }
                None => {
                    if len + buf.len() <= MAX_LINE {
                        line.extend_from_slice(buf);
                    }
                    len += buf.len();
                    (false, buf.len())
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => (false, 0),
            Err(_) => return Input::Eof,
        };
        r.consume(used);
        if done {
            break;
        }
    }
    if line.last() == Some(&b'\r') && len <= MAX_LINE {
        line.pop();
        len -= 1;
    }
    if len > MAX_LINE {
        return Input::TooLong(len);
    }
    match String::from_utf8(line) {
        Ok(s) => Input::Line(s),
        Err(_) => Input::NotUtf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> Vec<Input> {
        // A small buffer: lines span several reads.
        let mut r = std::io::BufReader::with_capacity(7, bytes);
        let mut v = Vec::new();
        loop {
            let i = read_line(&mut r);
            if i == Input::Eof {
                return v;
            }
            v.push(i);
        }
    }

    #[test]
    fn a_line_that_is_not_utf8_is_reported_and_reading_goes_on() {
        let got = all(b"caf\xe9\nstill here\r\n\nlast");
        assert_eq!(
            got,
            vec![
                Input::NotUtf8,
                Input::Line("still here".into()),
                Input::Line(String::new()),
                Input::Line("last".into())
            ]
        );
    }

    #[test]
    fn long_lines_are_whole_up_to_the_limit_and_refused_beyond() {
        let long = "x".repeat(10_000);
        let over = "y".repeat(MAX_LINE + 1);
        let text = format!("{long}\n{over}\nafter\n");
        let got = all(text.as_bytes());
        assert_eq!(got, vec![Input::Line(long), Input::TooLong(MAX_LINE + 1), Input::Line("after".into())]);
    }
}
