//! One direction of a link: a drop-tail FIFO queue in front of a wire with a
//! bandwidth and a propagation delay, plus impairments (loss models, jitter,
//! reordering, duplication). Pure: times are arguments.

use std::collections::VecDeque;

use crate::rng::Rng;
use crate::time::{Time, tx_time};

/// How packets are lost on the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum LossModel {
    None,
    /// Each packet independently with probability `p`.
    Bernoulli(f64),
    /// Two-state bursts (Gilbert–Elliott): in the good state packets are
    /// lost with `loss_good`, in the bad state with `loss_bad`; the state
    /// flips with `p_good_to_bad` / `p_bad_to_good` per packet.
    GilbertElliott {
        p_good_to_bad: f64,
        p_bad_to_good: f64,
        loss_good: f64,
        loss_bad: f64,
    },
    /// Exactly these packets (numbered from 0 in the order sent) are lost:
    /// a scripted scenario for teaching.
    Nth(Vec<u64>),
}

/// Random Early Detection (Floyd and Jacobson 1993): drop arriving packets
/// with a probability that grows with the average queue, so that senders
/// slow down before the queue is full.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Red {
    /// Below this average queue (packets) nothing is dropped early.
    pub min_th: f64,
    /// At or above it every arrival is dropped.
    pub max_th: f64,
    /// The drop probability reached at `max_th`.
    pub max_p: f64,
    /// Weight of the newest sample in the moving average.
    pub weight: f64,
}

/// Settings of one link direction.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Bits per second; 0 means infinitely fast.
    pub rate_bps: u64,
    /// One-way propagation delay.
    pub delay: Time,
    /// Extra random delay, uniform in [0, jitter] (reorders packets).
    pub jitter: Time,
    /// Packets the queue holds (drop-tail); 0 means unlimited.
    pub queue_limit: usize,
    pub loss: LossModel,
    /// Probability that a packet is held back by `reorder_delay`.
    pub reorder: f64,
    pub reorder_delay: Time,
    /// Probability that a packet arrives twice.
    pub duplicate: f64,
    /// Early drops instead of pure drop-tail.
    pub red: Option<Red>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            rate_bps: 0,
            delay: 0,
            jitter: 0,
            queue_limit: 0,
            loss: LossModel::None,
            reorder: 0.0,
            reorder_delay: 0,
            duplicate: 0.0,
            red: None,
        }
    }
}

/// What became of a packet handed to the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// The queue was full (congestion loss).
    QueueDrop,
    /// Lost on the wire (random loss).
    Lost,
    /// Arrives at this time (and again at the second, if duplicated).
    Arrives(Time, Option<Time>),
}

/// Counters of one link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub sent: u64,
    pub queue_drops: u64,
    /// Of the queue drops, those RED made before the queue was full.
    pub early_drops: u64,
    pub lost: u64,
    pub max_queue: usize,
}

/// One link direction with its queue.
#[derive(Clone, Debug)]
pub struct Link {
    pub cfg: LinkConfig,
    /// Departure times of the packets still queued or on the transmitter.
    queue: VecDeque<Time>,
    last_departure: Time,
    bad_state: bool,
    /// RED's moving average of the queue length.
    avg_queue: f64,
    pub stats: LinkStats,
}

impl Link {
    pub fn new(cfg: LinkConfig) -> Self {
        Link {
            cfg,
            queue: VecDeque::new(),
            last_departure: 0,
            bad_state: false,
            avg_queue: 0.0,
            stats: LinkStats::default(),
        }
    }

    /// True when the link keeps packets in order (no jitter or reordering),
    /// so its arrivals can be queued first-in first-out.
    pub fn is_fifo(&self) -> bool {
        self.cfg.jitter == 0 && self.cfg.reorder == 0.0 && self.cfg.duplicate == 0.0
    }

    /// Packets waiting at time `now` (including the one being sent).
    pub fn queued(&mut self, now: Time) -> usize {
        while self.queue.front().is_some_and(|&d| d <= now) {
            self.queue.pop_front();
        }
        self.queue.len()
    }

    fn lose(&mut self, rng: &mut Rng) -> bool {
        match &self.cfg.loss {
            LossModel::Nth(list) => list.contains(&(self.stats.sent - 1)),
            LossModel::None => false,
            LossModel::Bernoulli(p) => rng.chance(*p),
            LossModel::GilbertElliott {
                p_good_to_bad,
                p_bad_to_good,
                loss_good,
                loss_bad,
            } => {
                let flip = if self.bad_state {
                    *p_bad_to_good
                } else {
                    *p_good_to_bad
                };
                if rng.chance(flip) {
                    self.bad_state = !self.bad_state;
                }
                rng.chance(if self.bad_state {
                    *loss_bad
                } else {
                    *loss_good
                })
            }
        }
    }

    /// Hands a packet of `bytes` to the link at `now`.
    pub fn send(&mut self, now: Time, bytes: u32, rng: &mut Rng) -> Fate {
        self.stats.sent += 1;
        let waiting = self.queued(now);
        if self.cfg.queue_limit > 0 && waiting >= self.cfg.queue_limit {
            self.stats.queue_drops += 1;
            return Fate::QueueDrop;
        }
        if let Some(red) = self.cfg.red {
            if waiting == 0 {
                // The queue sat idle: age the average as if `m` empty-queue
                // samples had been taken meanwhile (Floyd and Jacobson §4).
                let slot = tx_time(bytes, self.cfg.rate_bps).max(1);
                let m = now.saturating_sub(self.last_departure) / slot;
                self.avg_queue *= (1.0 - red.weight).powf(m as f64);
            }
            self.avg_queue = (1.0 - red.weight) * self.avg_queue + red.weight * waiting as f64;
            let p = if self.avg_queue < red.min_th {
                0.0
            } else if self.avg_queue >= red.max_th {
                1.0
            } else {
                red.max_p * (self.avg_queue - red.min_th) / (red.max_th - red.min_th)
            };
            if rng.chance(p) {
                self.stats.queue_drops += 1;
                self.stats.early_drops += 1;
                return Fate::QueueDrop;
            }
        }
        let start = now.max(self.last_departure);
        let departure = start + tx_time(bytes, self.cfg.rate_bps);
        self.last_departure = departure;
        self.queue.push_back(departure);
        self.stats.max_queue = self.stats.max_queue.max(self.queue.len());
        // Random loss hits the packet after it used the queue and the wire,
        // as an error model at the receiving interface does.
        if self.lose(rng) {
            self.stats.lost += 1;
            return Fate::Lost;
        }
        let mut arrival = departure + self.cfg.delay;
        if self.cfg.jitter > 0 {
            arrival += rng.below(self.cfg.jitter + 1);
        }
        if rng.chance(self.cfg.reorder) {
            arrival += self.cfg.reorder_delay;
        }
        let dup = rng.chance(self.cfg.duplicate).then(|| arrival + 1_000);
        Fate::Arrives(arrival, dup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::{MS, SEC};

    #[test]
    fn a_busy_link_serialises_packets_and_drops_when_full() {
        // 12 Mbit/s: a 1500-byte packet takes exactly 1 ms.
        let mut l = Link::new(LinkConfig {
            rate_bps: 12_000_000,
            delay: 10 * MS,
            queue_limit: 3,
            ..Default::default()
        });
        let mut rng = Rng::new(1);
        let fates: Vec<Fate> = (0..4).map(|_| l.send(0, 1500, &mut rng)).collect();
        assert_eq!(fates[0], Fate::Arrives(11 * MS, None));
        assert_eq!(fates[2], Fate::Arrives(13 * MS, None));
        assert_eq!(fates[3], Fate::QueueDrop);
        // After the queue drained, there is room again.
        assert!(matches!(l.send(SEC, 1500, &mut rng), Fate::Arrives(..)));
        assert_eq!(l.stats.queue_drops, 1);
    }

    #[test]
    fn gilbert_elliott_losses_come_in_bursts() {
        let mut l = Link::new(LinkConfig {
            loss: LossModel::GilbertElliott {
                p_good_to_bad: 0.01,
                p_bad_to_good: 0.2,
                loss_good: 0.0,
                loss_bad: 0.8,
            },
            ..Default::default()
        });
        let mut rng = Rng::new(3);
        let lost: Vec<bool> = (0..100_000)
            .map(|_| l.send(0, 100, &mut rng) == Fate::Lost)
            .collect();
        let losses = lost.iter().filter(|x| **x).count();
        let pairs = lost.windows(2).filter(|w| w[0] && w[1]).count();
        // Far more back-to-back losses than independent losses would give.
        let p = losses as f64 / lost.len() as f64;
        assert!(
            pairs as f64 > 5.0 * p * p * lost.len() as f64,
            "{losses} {pairs}"
        );
    }
}
