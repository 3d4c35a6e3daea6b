//! The byte stream to a tenant's mail server: plain TCP, TLS from the first byte, or plain upgraded by
//! STARTTLS (each protocol client says when), with rustls and the Mozilla roots. Every connect is bounded
//! by a timeout.

use crate::domain::enums::MailServerTls;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// A connection to a mail server, encrypted or not.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP (TLS mode `NONE`, or before STARTTLS).
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            // The ring provider supports every safe protocol version, so this builder cannot fail; the
            // fallback keeps a panic out of the server all the same.
            let config = match rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
            {
                Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
                Err(_) => rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth(),
            };
            Arc::new(config)
        })
        .clone()
}

/// Opens TCP to `host:port` within `timeout`; with mode `TLS`, completes the TLS handshake too.
pub async fn connect(host: &str, port: u16, tls: MailServerTls, timeout: Duration) -> io::Result<Stream> {
    let tcp = tokio::time::timeout(timeout, TcpStream::connect((host_for_connect(host), port)))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("no answer from {host}:{port}")))??;
    // Commands are small and answered one by one: Nagle's delay would cost every round trip.
    tcp.set_nodelay(true)?;
    match tls {
        MailServerTls::Tls => upgrade(Stream::Plain(tcp), host, timeout).await,
        MailServerTls::None | MailServerTls::Starttls => Ok(Stream::Plain(tcp)),
    }
}

/// A bracketed IPv6 literal as the resolver wants it.
fn host_for_connect(host: &str) -> &str {
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// Wraps a plain stream in TLS, checking the server's certificate for `host`.
pub async fn upgrade(stream: Stream, host: &str, timeout: Duration) -> io::Result<Stream> {
    let Stream::Plain(tcp) = stream else { return Ok(stream) };
    let name = rustls::pki_types::ServerName::try_from(host_for_connect(host).to_string()).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("{host} is not a TLS server name"))
    })?;
    let connector = tokio_rustls::TlsConnector::from(tls_config());
    let tls = tokio::time::timeout(timeout, connector.connect(name, tcp)).await.map_err(|_| {
        io::Error::new(io::ErrorKind::TimedOut, format!("TLS handshake with {host} timed out"))
    })??;
    Ok(Stream::Tls(Box::new(tls)))
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
