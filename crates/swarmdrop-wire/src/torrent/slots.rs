//! Upload slots: who we unchoke, every round (the choker) and between rounds (a peer
//! that comes to want something takes a free slot; one that wants nothing more gives its
//! slot back).

use super::{Message, Millis, Store, Torrent};
use crate::choker::PeerRates;

impl<S: Store> Torrent<S> {
    /// Upload slots taken: peers unchoked that want something.
    pub(super) fn slots_in_use(&self) -> usize {
        self.peers
            .values()
            .filter(|p| p.connected && !p.session.am_choking && p.session.peer_interested)
            .count()
    }

    /// Gives a free slot to the choked, interested peer that sent us the most last round
    /// (tit-for-tat between rounds; the next round decides afresh).
    pub(super) fn unchoke_a_waiting_peer(&mut self) {
        if self.slots_in_use() >= self.config.upload_slots {
            return;
        }
        let next = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected && p.session.am_choking && p.session.peer_interested)
            .max_by(|(ka, a), (kb, b)| {
                a.download_rate
                    .total_cmp(&b.download_rate)
                    .then_with(|| kb.cmp(ka))
            })
            .map(|(key, _)| *key);
        if let Some(session) = next.and_then(|key| self.session(key)) {
            session.send(Message::Unchoke);
        }
    }

    pub(super) fn rechoke(&mut self, now: Millis) {
        let seconds = (now.saturating_sub(self.last_rechoke)).max(1) as f64 / 1000.0;
        self.last_rechoke = now;
        let mut rates = Vec::with_capacity(self.peers.len());
        for (key, p) in &mut self.peers {
            p.download_rate = p.window_down as f64 / seconds;
            p.upload_rate = p.window_up as f64 / seconds;
            p.window_down = 0;
            p.window_up = 0;
            rates.push(PeerRates {
                key: *key,
                interested: p.connected && p.session.peer_interested,
                download_rate: p.download_rate,
                upload_rate: p.upload_rate,
            });
        }
        let seeding = self.picker.complete();
        let random = self.next_random();
        let unchoked = self.choker.rechoke(&rates, seeding, random);
        for (key, p) in &mut self.peers {
            let unchoke = unchoked.contains(key);
            if !p.connected {
                continue;
            }
            if unchoke && p.session.am_choking {
                p.session.send(Message::Unchoke);
            } else if !unchoke && !p.session.am_choking {
                p.session.send(Message::Choke);
            }
        }
    }
}
