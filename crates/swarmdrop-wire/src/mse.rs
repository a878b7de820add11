//! Message Stream Encryption (MSE, also "protocol encryption"), the obfuscated handshake
//! that libtorrent, qBittorrent and Transmission try before plain BitTorrent.
//!
//! libtorrent's default is to open every outgoing connection with MSE and only retry in
//! plaintext after the peer hangs up, which costs a second per peer; so a seeder that
//! cannot answer MSE starts every libtorrent download late. Both roles are here, sans IO:
//! feed received bytes to [`MseHandshake::handle_bytes`], send what
//! [`MseHandshake::take_transmit`] returns, and once [`MseHandshake::established`] is
//! `Some`, the connection carries BitTorrent, in plaintext or under RC4 as negotiated.
//!
//! The exchange (Vuze's "Message Stream Encryption" specification, which libtorrent
//! follows): 768-bit Diffie–Hellman (`Ya`, `Yb` plus random padding), a sync marker
//! `HASH('req1', S)` the responder scans for, the info hash hidden as
//! `HASH('req2', SKEY) xor HASH('req3', S)`, then an RC4-encrypted verification constant
//! and the crypto method offer and choice. Every pad is capped at 512 bytes and the
//! initial payload at 65,535, so a peer can make us buffer at most ~67 KB before failing.

use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Encoding as _, U192, U768};
use sha1::{Digest as _, Sha1};

#[cfg(test)]
mod tests;

/// The group's prime (the spec's `P`); the generator is 2.
const PRIME: U768 = U768::from_be_hex(concat!(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74",
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437",
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
));

/// Length of a public key on the wire.
pub const KEY_LEN: usize = 96;
/// The longest padding either side may send.
pub const MAX_PAD: usize = 512;
/// `crypto_provide`/`crypto_select` bit: the payload stream stays plaintext.
pub const CRYPTO_PLAINTEXT: u32 = 0x01;
/// `crypto_provide`/`crypto_select` bit: the payload stream is RC4.
pub const CRYPTO_RC4: u32 = 0x02;

/// Why an MSE handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MseError {
    /// The peer's public key is 0, 1, P-1 or not below P.
    #[error("the peer's Diffie-Hellman key is degenerate")]
    BadKey,
    /// No sync marker within the 512 bytes of padding the spec allows.
    #[error("no MSE sync marker within {MAX_PAD} bytes of padding")]
    NoSync,
    /// The hidden info hash is not one we serve.
    #[error("the peer asked for a torrent we do not serve")]
    UnknownTorrent,
    /// The decrypted verification constant was not zero: wrong keys or garbage.
    #[error("the MSE verification constant did not decrypt to zeros")]
    BadVerification,
    /// A pad length over 512.
    #[error("an MSE pad of {0} bytes (at most {MAX_PAD})")]
    PadTooLong(usize),
    /// No crypto method both sides allow.
    #[error("no crypto method in common (offered {offered:#x}, allowed {allowed:#x})")]
    NoCommonMethod {
        /// What the initiator offered.
        offered: u32,
        /// What this side allows.
        allowed: u32,
    },
    /// The responder selected a method we did not offer, or more than one.
    #[error("the peer selected crypto method {0:#x}, which was not offered")]
    BadSelection(u32),
}

impl MseError {
    /// The stable snake_case code (metric label).
    pub fn code(&self) -> &'static str {
        match self {
            MseError::BadKey => "mse_bad_key",
            MseError::NoSync => "mse_no_sync",
            MseError::UnknownTorrent => "mse_unknown_torrent",
            MseError::BadVerification => "mse_bad_verification",
            MseError::PadTooLong(_) => "mse_pad_too_long",
            MseError::NoCommonMethod { .. } => "mse_no_common_method",
            MseError::BadSelection(_) => "mse_bad_selection",
        }
    }
}

/// The RC4 stream cipher, as MSE uses it: keyed with a SHA-1 digest, first 1024 bytes of
/// keystream dropped. RC4 is weak cryptography; MSE uses it for obfuscation, not secrecy.
#[derive(Clone)]
pub struct Rc4 {
    state: [u8; 256],
    i: u8,
    j: u8,
}

impl std::fmt::Debug for Rc4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Rc4(..)")
    }
}

impl Rc4 {
    /// A cipher keyed with `key` (1 to 256 bytes), nothing dropped.
    pub fn new(key: &[u8]) -> Self {
        let mut state = [0u8; 256];
        for (k, slot) in state.iter_mut().enumerate() {
            *slot = k as u8;
        }
        if !key.is_empty() {
            let mut j = 0u8;
            for k in 0..256 {
                j = j.wrapping_add(state[k]).wrapping_add(key[k % key.len()]);
                state.swap(k, usize::from(j));
            }
        }
        Rc4 { state, i: 0, j: 0 }
    }

    fn for_mse(key: [u8; 20]) -> Self {
        let mut cipher = Rc4::new(&key);
        cipher.apply(&mut [0u8; 1024]);
        cipher
    }

    /// Encrypts or decrypts `data` in place (the same operation).
    pub fn apply(&mut self, data: &mut [u8]) {
        for byte in data {
            self.i = self.i.wrapping_add(1);
            self.j = self.j.wrapping_add(self.state[usize::from(self.i)]);
            self.state.swap(usize::from(self.i), usize::from(self.j));
            let k = self.state[usize::from(self.i)].wrapping_add(self.state[usize::from(self.j)]);
            *byte ^= self.state[usize::from(k)];
        }
    }
}

fn hash(parts: &[&[u8]]) -> [u8; 20] {
    let mut hasher = Sha1::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

fn public_key(private: &[u8; 20]) -> [u8; KEY_LEN] {
    let params = DynResidueParams::new(&PRIME);
    DynResidue::new(&U768::from_u8(2), params)
        .pow(&exponent(private))
        .retrieve()
        .to_be_bytes()
}

fn exponent(private: &[u8; 20]) -> U192 {
    let mut wide = [0u8; 24];
    wide[4..].copy_from_slice(private);
    U192::from_be_slice(&wide)
}

fn shared_secret(theirs: &[u8], private: &[u8; 20]) -> Result<[u8; KEY_LEN], MseError> {
    let theirs = U768::from_be_slice(theirs);
    let degenerate = theirs <= U768::ONE || theirs >= PRIME.wrapping_sub(&U768::ONE);
    if degenerate {
        return Err(MseError::BadKey);
    }
    let params = DynResidueParams::new(&PRIME);
    Ok(DynResidue::new(&theirs, params)
        .pow(&exponent(private))
        .retrieve()
        .to_be_bytes())
}

/// What a finished handshake leaves the connection with.
#[derive(Debug)]
pub struct Established {
    /// The torrent the connection is for.
    pub info_hash: [u8; 20],
    /// `CRYPTO_PLAINTEXT` or `CRYPTO_RC4`.
    pub method: u32,
    /// Decrypts what arrives from now on (RC4 only).
    pub incoming: Option<Rc4>,
    /// Encrypts what we send from now on (RC4 only).
    pub outgoing: Option<Rc4>,
    /// BitTorrent bytes that arrived with the handshake: the initial payload and anything
    /// after it, already decrypted.
    pub received: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    PeerKey,
    Sync,
    HiddenHash,
    Offer,
    PadC(usize),
    InitialPayload(usize),
    Verification,
    Selection,
    PadD(usize),
    Done,
}

/// One side of an MSE handshake.
#[derive(Debug)]
pub struct MseHandshake {
    initiator: bool,
    private: [u8; 20],
    info_hashes: Vec<[u8; 20]>,
    /// Initiator: the methods offered. Responder: the methods accepted.
    methods: u32,
    step: Step,
    inbox: Vec<u8>,
    outbox: Vec<u8>,
    secret: [u8; KEY_LEN],
    /// Responder: the padding to send after our key.
    pad: Vec<u8>,
    /// What [`Self::find_marker`] scans for.
    marker: Vec<u8>,
    info_hash: [u8; 20],
    offered: u32,
    selected: u32,
    incoming: Option<Rc4>,
    outgoing: Option<Rc4>,
    received: Vec<u8>,
    established: Option<Established>,
}

impl MseHandshake {
    /// The connecting side, for `info_hash`, offering `methods` (`CRYPTO_*` bits).
    /// `private` and `pad` (at most 512 bytes) come from the caller's random source.
    pub fn initiator(info_hash: [u8; 20], methods: u32, private: [u8; 20], pad: &[u8]) -> Self {
        let mut handshake = Self::new(true, vec![info_hash], methods, private);
        handshake.info_hash = info_hash;
        handshake.outbox.extend_from_slice(&public_key(&private));
        handshake
            .outbox
            .extend_from_slice(&pad[..pad.len().min(MAX_PAD)]);
        handshake
    }

    /// The accepting side, serving `info_hashes`, accepting `methods` (plaintext is chosen
    /// whenever both sides allow it: MSE here is for getting past the handshake, and
    /// loopback and LAN peers gain nothing from RC4).
    pub fn responder(
        info_hashes: Vec<[u8; 20]>,
        methods: u32,
        private: [u8; 20],
        pad: &[u8],
    ) -> Self {
        let mut handshake = Self::new(false, info_hashes, methods, private);
        handshake.pad = pad[..pad.len().min(MAX_PAD)].to_vec();
        handshake
    }

    fn new(initiator: bool, info_hashes: Vec<[u8; 20]>, methods: u32, private: [u8; 20]) -> Self {
        MseHandshake {
            initiator,
            private,
            info_hashes,
            methods,
            step: Step::PeerKey,
            inbox: Vec::new(),
            outbox: Vec::new(),
            secret: [0; KEY_LEN],
            pad: Vec::new(),
            marker: Vec::new(),
            info_hash: [0; 20],
            offered: 0,
            selected: 0,
            incoming: None,
            outgoing: None,
            received: Vec::new(),
            established: None,
        }
    }

    /// Bytes to send now (possibly none).
    pub fn take_transmit(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.outbox)
    }

    /// The outcome once the handshake is complete (taken once).
    pub fn established(&mut self) -> Option<Established> {
        self.established.take()
    }

    /// Feeds received bytes. Errors are final: close the connection.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<(), MseError> {
        if self.step == Step::Done {
            self.received.extend_from_slice(bytes);
            return Ok(());
        }
        self.inbox.extend_from_slice(bytes);
        while self.advance()? {}
        Ok(())
    }

    /// Takes `n` bytes off the front of the inbox, decrypted with the incoming cipher.
    fn take_decrypted(&mut self, n: usize) -> Vec<u8> {
        let mut taken: Vec<u8> = self.inbox.drain(..n).collect();
        if let Some(cipher) = self.incoming.as_mut() {
            cipher.apply(&mut taken);
        }
        taken
    }

    /// One step forward if the inbox holds enough; `Ok(false)` waits for more bytes.
    fn advance(&mut self) -> Result<bool, MseError> {
        let have = self.inbox.len();
        match self.step {
            Step::PeerKey if have >= KEY_LEN => {
                let theirs: Vec<u8> = self.inbox.drain(..KEY_LEN).collect();
                self.secret = shared_secret(&theirs, &self.private)?;
                if self.initiator {
                    self.send_offer();
                    self.step = Step::Verification;
                } else {
                    let pad = std::mem::take(&mut self.pad);
                    self.outbox.extend_from_slice(&public_key(&self.private));
                    self.outbox.extend_from_slice(&pad);
                    self.marker = hash(&[b"req1", &self.secret]).to_vec();
                    self.step = Step::Sync;
                }
            }
            Step::Sync => return self.find_marker(20),
            Step::HiddenHash if have >= 20 => {
                let hidden: Vec<u8> = self.inbox.drain(..20).collect();
                let req3 = hash(&[b"req3", &self.secret]);
                let req2: Vec<u8> = hidden.iter().zip(req3).map(|(a, b)| a ^ b).collect();
                let info_hash = self
                    .info_hashes
                    .iter()
                    .find(|ih| hash(&[b"req2", ih.as_slice()]).as_slice() == req2)
                    .copied()
                    .ok_or(MseError::UnknownTorrent)?;
                self.info_hash = info_hash;
                self.incoming = Some(Rc4::for_mse(hash(&[b"keyA", &self.secret, &info_hash])));
                self.outgoing = Some(Rc4::for_mse(hash(&[b"keyB", &self.secret, &info_hash])));
                self.step = Step::Offer;
            }
            Step::Offer if have >= 14 => {
                let header = self.take_decrypted(14);
                if header[..8] != [0u8; 8] {
                    return Err(MseError::BadVerification);
                }
                self.offered = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
                let pad = usize::from(u16::from_be_bytes([header[12], header[13]]));
                if pad > MAX_PAD {
                    return Err(MseError::PadTooLong(pad));
                }
                self.step = Step::PadC(pad);
            }
            Step::PadC(pad) if have >= pad + 2 => {
                let taken = self.take_decrypted(pad + 2);
                let length = u16::from_be_bytes([taken[pad], taken[pad + 1]]);
                self.step = Step::InitialPayload(usize::from(length));
            }
            Step::InitialPayload(length) if have >= length => {
                let payload = self.take_decrypted(length);
                self.select()?;
                self.received = payload;
                self.finish();
            }
            Step::Verification => return self.find_marker(8),
            Step::Selection if have >= 6 => {
                let taken = self.take_decrypted(6);
                let selected = u32::from_be_bytes([taken[0], taken[1], taken[2], taken[3]]);
                if selected.count_ones() != 1 || selected & self.methods == 0 {
                    return Err(MseError::BadSelection(selected));
                }
                self.selected = selected;
                let pad = usize::from(u16::from_be_bytes([taken[4], taken[5]]));
                if pad > MAX_PAD {
                    return Err(MseError::PadTooLong(pad));
                }
                self.step = Step::PadD(pad);
            }
            Step::PadD(pad) if have >= pad => {
                let _ = self.take_decrypted(pad);
                self.finish();
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Scans for the sync marker (the responder's `HASH('req1', S)`, or the initiator's
    /// encrypted verification constant), which follows at most 512 bytes of padding.
    fn find_marker(&mut self, len: usize) -> Result<bool, MseError> {
        let found = self
            .inbox
            .windows(len)
            .position(|window| window == self.marker.as_slice());
        match found {
            Some(at) if at <= MAX_PAD => {
                self.inbox.drain(..at + len);
                self.step = if self.initiator {
                    Step::Selection
                } else {
                    Step::HiddenHash
                };
                Ok(true)
            }
            Some(_) => Err(MseError::NoSync),
            None if self.inbox.len() >= MAX_PAD + len => Err(MseError::NoSync),
            None => Ok(false),
        }
    }

    /// Initiator, step 3: sync marker, hidden info hash, encrypted offer (no padding, no
    /// initial payload: the BitTorrent handshake follows once the method is known).
    fn send_offer(&mut self) {
        let secret = self.secret;
        let info_hash = self.info_hash;
        self.outbox.extend_from_slice(&hash(&[b"req1", &secret]));
        let req2 = hash(&[b"req2", &info_hash]);
        let req3 = hash(&[b"req3", &secret]);
        self.outbox
            .extend(req2.iter().zip(req3).map(|(a, b)| a ^ b));
        let mut outgoing = Rc4::for_mse(hash(&[b"keyA", &secret, &info_hash]));
        let mut incoming = Rc4::for_mse(hash(&[b"keyB", &secret, &info_hash]));
        let mut offer = [0u8; 16];
        offer[8..12].copy_from_slice(&self.methods.to_be_bytes());
        outgoing.apply(&mut offer);
        self.outbox.extend_from_slice(&offer);
        let mut verification = [0u8; 8];
        incoming.apply(&mut verification);
        self.marker = verification.to_vec();
        self.incoming = Some(incoming);
        self.outgoing = Some(outgoing);
    }

    /// Responder, step 4: choose the method and answer with it.
    fn select(&mut self) -> Result<(), MseError> {
        let common = self.offered & self.methods;
        self.selected = if common & CRYPTO_PLAINTEXT != 0 {
            CRYPTO_PLAINTEXT
        } else if common & CRYPTO_RC4 != 0 {
            CRYPTO_RC4
        } else {
            return Err(MseError::NoCommonMethod {
                offered: self.offered,
                allowed: self.methods,
            });
        };
        let mut answer = [0u8; 14];
        answer[8..12].copy_from_slice(&self.selected.to_be_bytes());
        if let Some(cipher) = self.outgoing.as_mut() {
            cipher.apply(&mut answer);
        }
        self.outbox.extend_from_slice(&answer);
        Ok(())
    }

    fn finish(&mut self) {
        let rc4 = self.selected == CRYPTO_RC4;
        let (mut incoming, outgoing) = if rc4 {
            (self.incoming.take(), self.outgoing.take())
        } else {
            (None, None)
        };
        let mut received = std::mem::take(&mut self.received);
        let mut rest = std::mem::take(&mut self.inbox);
        if let Some(cipher) = incoming.as_mut() {
            cipher.apply(&mut rest);
        }
        received.extend_from_slice(&rest);
        self.step = Step::Done;
        self.established = Some(Established {
            info_hash: self.info_hash,
            method: self.selected,
            incoming,
            outgoing,
            received,
        });
    }
}

/// Whether the first bytes of an incoming connection are a plaintext BitTorrent
/// handshake (`Some(true)`), MSE (`Some(false)`), or too few to tell (`None`).
pub fn is_plain_handshake(first: &[u8]) -> Option<bool> {
    const PROTOCOL: &[u8] = b"\x13BitTorrent protocol";
    let n = first.len().min(PROTOCOL.len());
    if first[..n] != PROTOCOL[..n] {
        Some(false)
    } else if n == PROTOCOL.len() {
        Some(true)
    } else {
        None
    }
}
