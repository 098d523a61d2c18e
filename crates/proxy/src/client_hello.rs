//! What a TLS ClientHello tells before the handshake (Envoy's
//! tls_inspector): the server name (SNI) and the offered ALPN protocols.
//! Parsing never panics: malformed input is "not a ClientHello".

/// The first handshake record, as far as filter-chain matching needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub server_name: Option<String>,
    pub alpn: Vec<String>,
}

/// What the bytes seen so far are.
#[derive(Debug, PartialEq, Eq)]
pub enum Peeked {
    /// Not enough bytes yet: the record is this long in total.
    Incomplete {
        record_len: usize,
    },
    Hello(ClientHello),
    NotClientHello,
}

const HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 1;
const SERVER_NAME: u16 = 0;
const ALPN: u16 = 16;
const RECORD_HEADER: usize = 5;

/// Parses the first TLS record of `bytes`.
pub fn parse(bytes: &[u8]) -> Peeked {
    if bytes.len() < RECORD_HEADER {
        return Peeked::Incomplete {
            record_len: RECORD_HEADER,
        };
    }
    if bytes[0] != HANDSHAKE {
        return Peeked::NotClientHello;
    }
    let record_len = RECORD_HEADER + usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
    if bytes.len() < record_len {
        return Peeked::Incomplete { record_len };
    }
    match hello(&bytes[RECORD_HEADER..record_len]) {
        Some(hello) => Peeked::Hello(hello),
        None => Peeked::NotClientHello,
    }
}

/// A cursor over big-endian TLS encodings.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a length prefix of `width` bytes.
    fn vector(&mut self, width: usize) -> Option<Reader<'a>> {
        let len = match width {
            1 => usize::from(self.u8()?),
            _ => usize::from(self.u16()?),
        };
        Some(Reader(self.take(len)?))
    }
}

fn hello(record: &[u8]) -> Option<ClientHello> {
    let mut r = Reader(record);
    if r.u8()? != CLIENT_HELLO {
        return None;
    }
    let len = r.take(3)?;
    let len = usize::from(len[0]) << 16 | usize::from(len[1]) << 8 | usize::from(len[2]);
    // A ClientHello split over several records is read from its first only.
    let mut body = Reader(r.take(len.min(r.0.len()))?);
    body.take(2 + 32)?; // legacy_version, random
    body.vector(1)?; // session id
    body.vector(2)?; // cipher suites
    body.vector(1)?; // compression methods
    let mut hello = ClientHello::default();
    if body.0.is_empty() {
        return Some(hello); // no extensions
    }
    let mut extensions = body.vector(2)?;
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let mut data = extensions.vector(2)?;
        match kind {
            SERVER_NAME => hello.server_name = server_name(&mut data),
            ALPN => hello.alpn = alpn(&mut data)?,
            _ => {}
        }
    }
    Some(hello)
}

fn server_name(data: &mut Reader<'_>) -> Option<String> {
    let mut names = data.vector(2)?;
    while !names.0.is_empty() {
        let kind = names.u8()?;
        let name = names.vector(2)?;
        if kind == 0 {
            let name = std::str::from_utf8(name.0).ok()?;
            return Some(name.to_ascii_lowercase());
        }
    }
    None
}

fn alpn(data: &mut Reader<'_>) -> Option<Vec<String>> {
    let mut list = data.vector(2)?;
    let mut protocols = Vec::new();
    while !list.0.is_empty() {
        let protocol = list.vector(1)?;
        protocols.push(String::from_utf8_lossy(protocol.0).into_owned());
    }
    Some(protocols)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A real ClientHello, as rustls writes it.
    fn client_hello(server_name: &str, alpn: &[&[u8]]) -> Vec<u8> {
        let roots = rustls::RootCertStore::empty();
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let name = server_name.to_string().try_into().unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut bytes = Vec::new();
        client.write_tls(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn reads_server_name_and_alpn() {
        let bytes = client_hello("Reviews.Default.svc", &[b"istio-http/1.1", b"h2"]);
        let expected = ClientHello {
            server_name: Some("reviews.default.svc".into()),
            alpn: vec!["istio-http/1.1".into(), "h2".into()],
        };
        assert_eq!(parse(&bytes), Peeked::Hello(expected));
    }

    #[test]
    fn asks_for_the_rest_of_a_partial_record() {
        let bytes = client_hello("db", &[]);
        assert_eq!(
            parse(&bytes[..10]),
            Peeked::Incomplete {
                record_len: bytes.len()
            }
        );
        assert_eq!(parse(&bytes[..3]), Peeked::Incomplete { record_len: 5 });
    }

    #[test]
    fn garbage_is_not_a_client_hello() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Peeked::NotClientHello);
        // A record that ends in the middle of the extensions.
        let mut bytes = client_hello("db", &[b"h2"]);
        let short = u16::try_from(bytes.len() - 5 - 4).unwrap().to_be_bytes();
        bytes[3..5].copy_from_slice(&short);
        assert_eq!(parse(&bytes), Peeked::NotClientHello);
        for cut in 0..bytes.len() {
            let _ = parse(&bytes[..cut]); // never panics
        }
    }
}
