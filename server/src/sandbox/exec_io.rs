//! One exec of the platform's relay in a sandbox as a byte stream (`AsyncRead + AsyncWrite`):
//! stdin and stdout of an engine exec without a TTY. Web previews and files ride on it (the
//! terminal rides on an exec with a TTY, through ttyd). Stderr is kept apart: the relay says
//! there what went wrong, and it never mixes with the stream's bytes.
use bollard::container::LogOutput;
use bytes::{Buf, Bytes};
use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub type ExecOutput = Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>;
pub type ExecInput = Pin<Box<dyn AsyncWrite + Send>>;

pub struct ExecIo {
    output: ExecOutput,
    input: ExecInput,
    pending: Bytes,
    /// The last of what the relay wrote to stderr (bounded), for error messages.
    stderr: Vec<u8>,
}

impl ExecIo {
    pub fn new(output: ExecOutput, input: ExecInput) -> Self {
        Self {
            output,
            input,
            pending: Bytes::new(),
            stderr: Vec::new(),
        }
    }

    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }
}

impl AsyncRead for ExecIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending[..n]);
                self.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match self.output.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(
                    LogOutput::StdOut { message } | LogOutput::Console { message },
                ))) => {
                    self.pending = message;
                }
                Poll::Ready(Some(Ok(LogOutput::StdErr { message }))) => {
                    let room = 4096usize.saturating_sub(self.stderr.len());
                    self.stderr
                        .extend_from_slice(&message[..message.len().min(room)]);
                }
                Poll::Ready(Some(Ok(LogOutput::StdIn { .. }))) => {}
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(std::io::Error::other(e.to_string())))
                }
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl AsyncWrite for ExecIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.input.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.input.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.input.as_mut().poll_shutdown(cx)
    }
}
