//! Generated Video SDK sessions and their users: a pure function of (seed, account, month, index), so no
//! month is ever materialised and any session id can be mapped back to its month and index.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;

use crate::data::{hash, hash_str, last_of_month, mix64, month_key, pick};
use crate::videosdk::VideoSdkAccountSpec;

const SALT_SESSION: u64 = 101;
const SALT_USER: u64 = 102;
const SALT_TIME: u64 = 103;

const WORDS: &[&str] = &[
    "Standup",
    "Tutoring",
    "Telehealth",
    "Onboarding",
    "Office hours",
    "Retro",
    "Demo",
    "Coaching",
];
const NAMES: &[&str] = &[
    "Zoë", "José", "Ana", "Søren", "Łukasz", "Aiko", "Priya", "Wei", "Fatima", "Jean-Luc",
    "D'Angelo", "李",
];
const DEVICES: &[&str] = &["Phone", "H.323/SIP", "Windows", "Mac", "iOS", "Android"];
const NETWORKS: &[&str] = &["Wired", "Wifi", "PPP", "Cellular", "Others"];
const LOCATIONS: &[&str] = &[
    "San Jose (US)",
    "Amsterdam (NL)",
    "Sydney (AU)",
    "São Paulo (BR)",
];
const CENTERS: &[&str] = &["SC", "NY", "AM", "SY", "HK"];
const CONNECTIONS: &[&str] = &["P2P", "UDP", "TCP", "SSL"];
const CLIENTS: &[&str] = &["Windows", "Mac", "Web", "iOS", "Android"];
const MICS: &[&str] = &["Built-in Microphone", "USB Headset", "AirPods"];
const CAMERAS: &[&str] = &["FaceTime HD Camera", "Logitech C920", "Integrated Webcam"];

pub(crate) struct SdkAccount {
    pub spec: VideoSdkAccountSpec,
    key: u64,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct SessionRow {
    pub id: String,
    session_name: String,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<String>,
    pub user_count: u32,
    has_voip: bool,
    has_video: bool,
    has_screen_share: bool,
    has_recording: bool,
    has_pstn: bool,
    session_key: String,
    has_session_summary: bool,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct UserRow {
    id: String,
    name: String,
    device: &'static str,
    ip_address: String,
    location: &'static str,
    network_type: &'static str,
    microphone: &'static str,
    speaker: &'static str,
    camera: &'static str,
    data_center: &'static str,
    connection_type: &'static str,
    join_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    leave_time: Option<String>,
    user_key: String,
    audio_call: Vec<serde_json::Value>,
    participant_uuid: String,
    client: &'static str,
    /// Not in Zoom's schema: there so clients show they keep unknown fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    sdk_version: Option<String>,
}

/// Where a session sits: its month and index, and its times.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SessionSlot {
    pub month: NaiveDate,
    pub index: u32,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// How much later than `end` it is served as ended (`Control::set_sdk_session_extended`): the end and
    /// every leave time move, the joins do not.
    pub late: Duration,
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Zoom serves `duration` as text: "30:00", or "01:02:03" past an hour.
fn duration_text(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    if h > 0 {
        format!("{h:02}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

impl SdkAccount {
    pub fn new(seed: u64, spec: VideoSdkAccountSpec) -> Self {
        let key = hash(&[seed, hash_str(&spec.api_key)]);
        Self { spec, key }
    }

    /// Ids look like Zoom's base64 UUIDs, with `/`, `+` and `=`; every fourth starts with `/`, every
    /// fourth contains `//`, and every fourth is shaped like `/ab//c+d==` (both, and a `+`).
    pub fn session_id(&self, month: NaiveDate, index: u32) -> String {
        let mk = month_key(month) as u32;
        let check = hash(&[self.key, SALT_SESSION, u64::from(mk), u64::from(index)]);
        let mut bytes = [0_u8; 16];
        bytes[..4].copy_from_slice(&mk.to_be_bytes());
        bytes[4..8].copy_from_slice(&index.to_be_bytes());
        bytes[8..].copy_from_slice(&check.to_be_bytes());
        let mask = mix64(check ^ self.key).to_be_bytes();
        for (b, m) in bytes[..8].iter_mut().zip(mask) {
            *b ^= m;
        }
        let b = STANDARD.encode(bytes);
        match index % 4 {
            0 => format!("/{b}"),
            1 => format!("{}//{}", &b[..10], &b[10..]),
            2 => format!("/{}//{}+{}", &b[..10], &b[10..20], &b[20..]),
            _ => b,
        }
    }

    /// The month and index of an id this account served, or `None`.
    pub fn parse_session_id(&self, id: &str) -> Option<(NaiveDate, u32)> {
        let b: String = match id.len() {
            24 => id.to_owned(),
            25 => id.get(1..)?.to_owned(),
            26 => format!("{}{}", id.get(..10)?, id.get(12..)?),
            28 => format!("{}{}{}", id.get(1..11)?, id.get(13..23)?, id.get(24..)?),
            _ => return None,
        };
        let bytes: [u8; 16] = STANDARD.decode(b).ok()?.try_into().ok()?;
        let check = u64::from_be_bytes(bytes[8..].try_into().ok()?);
        let mask = mix64(check ^ self.key).to_be_bytes();
        let mut head = [0_u8; 8];
        for (i, h) in head.iter_mut().enumerate() {
            *h = bytes[i] ^ mask[i];
        }
        let mk = u32::from_be_bytes(head[..4].try_into().ok()?);
        let index = u32::from_be_bytes(head[4..].try_into().ok()?);
        let month = NaiveDate::from_ymd_opt((mk / 12) as i32, mk % 12 + 1, 1)?;
        (index < self.spec.sessions_per_month && self.session_id(month, index) == id)
            .then_some((month, index))
    }

    pub fn slot(&self, month: NaiveDate, index: u32) -> SessionSlot {
        let first = month.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let days = i64::from(last_of_month(month).day());
        let n = i64::from(self.spec.sessions_per_month.max(1));
        let slot = days * 86_400 / n;
        let h = hash(&[self.key, SALT_TIME, month_key(month), u64::from(index)]);
        let start = first
            + Duration::seconds(i64::from(index) * slot + (h % (slot / 2).max(1) as u64) as i64);
        let minutes = 10 + (h >> 20) % 110;
        SessionSlot {
            month,
            index,
            start,
            end: start + Duration::minutes(minutes as i64),
            late: Duration::zero(),
        }
    }

    fn join_count(&self, s: &SessionSlot) -> u32 {
        let h = hash(&[self.key, SALT_USER, month_key(s.month), u64::from(s.index)]);
        1 + (h % u64::from(self.spec.users_per_session.max(1))) as u32
    }

    /// Every fourth join is a rejoin of the participant before it: same id, later join_time.
    fn participant(j: u32) -> u32 {
        if j % 4 == 3 {
            j - 1
        } else {
            j
        }
    }

    /// The slot of the `k`th extra session of `month` (see `Control::add_sdk_session`): on the month's first
    /// day, indexed after the generated sessions so its users are its own.
    pub fn extra_slot(&self, month: NaiveDate, k: u32) -> SessionSlot {
        let first = month.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
        let start = first + Duration::minutes(i64::from(k % 100) * 10);
        SessionSlot {
            month,
            index: self.spec.sessions_per_month.saturating_add(k),
            start,
            end: start + Duration::minutes(30),
            late: Duration::zero(),
        }
    }

    /// The session row of a slot, under `id` (a generated id, or an extra one).
    pub fn session(&self, s: &SessionSlot, open: bool, id: String) -> SessionRow {
        let h = hash(&[
            self.key,
            SALT_SESSION,
            month_key(s.month),
            u64::from(s.index),
            7,
        ]);
        let joins = self.join_count(s);
        let participants = (0..joins).filter(|j| Self::participant(*j) == *j).count() as u32;
        SessionRow {
            id,
            session_name: format!("{} #{}", pick(WORDS, h), s.index + 1),
            start_time: ts(s.start),
            end_time: (!open).then(|| ts(s.end + s.late)),
            duration: (!open).then(|| duration_text((s.end + s.late - s.start).num_seconds())),
            user_count: participants,
            has_voip: h & 1 == 0,
            has_video: h & 2 == 0,
            has_screen_share: h & 4 == 0,
            has_recording: h & 8 == 0,
            has_pstn: h & 16 == 0,
            session_key: format!("sk-{:08x}", (h >> 32) as u32),
            has_session_summary: h & 32 == 0,
        }
    }

    pub fn users(&self, s: &SessionSlot, open: bool) -> Vec<UserRow> {
        let joins = self.join_count(s);
        let length = (s.end - s.start).num_seconds();
        let quarter = (length / 4).max(1) as u64;
        (0..joins)
            .map(|j| {
                let p = Self::participant(j);
                let hp = hash(&[
                    self.key,
                    SALT_USER,
                    month_key(s.month),
                    u64::from(s.index),
                    u64::from(p),
                ]);
                let hj = mix64(hp ^ u64::from(j));
                let offset = Duration::seconds((hj % quarter) as i64);
                let (join, leave) = if j % 4 == 3 {
                    (s.start + Duration::seconds(length / 2 + 60), s.end)
                } else if j % 4 == 2 && j + 1 < joins {
                    (s.start + offset, s.start + Duration::seconds(length / 2))
                } else {
                    (
                        s.start + offset,
                        s.end - Duration::seconds(((hj >> 16) % quarter) as i64),
                    )
                };
                let device = pick(DEVICES, hp >> 3);
                let still_in = open && !(j % 4 == 2 && j + 1 < joins);
                UserRow {
                    id: format!("{:016x}", hp),
                    name: format!("{} {}", pick(NAMES, hp >> 7), p + 1),
                    device,
                    ip_address: format!(
                        "10.{}.{}.{}",
                        (hp >> 8) % 256,
                        (hp >> 16) % 256,
                        (hp >> 24) % 256
                    ),
                    location: pick(LOCATIONS, hp >> 11),
                    network_type: pick(NETWORKS, hj >> 13),
                    microphone: pick(MICS, hp >> 17),
                    speaker: pick(MICS, hp >> 19),
                    camera: pick(CAMERAS, hp >> 23),
                    data_center: pick(CENTERS, hj >> 29),
                    connection_type: pick(CONNECTIONS, hj >> 31),
                    join_time: ts(join),
                    leave_time: (!still_in).then(|| ts(leave + s.late)),
                    user_key: format!("uk-{:06x}", (hp >> 40) as u32 & 0xff_ffff),
                    audio_call: if device == "Phone" {
                        vec![serde_json::json!({
                            "call_number": format!("+1408555{:04}", hp % 10_000),
                            "call_type": "call-in",
                            "zoom_number": "+16699006833",
                        })]
                    } else {
                        Vec::new()
                    },
                    participant_uuid: format!("{:016X}{:016X}", hp, mix64(hp)),
                    client: pick(CLIENTS, hp >> 37),
                    sdk_version: (p % 2 == 0).then(|| format!("1.{}.{}", hp % 13, hj % 7)),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> SdkAccount {
        SdkAccount::new(
            7,
            VideoSdkAccountSpec {
                api_key: "k".into(),
                api_secret: "s".into(),
                sessions_per_month: 12,
                users_per_session: 6,
                rate_limits: None,
            },
        )
    }

    #[test]
    fn ids_have_zooms_awkward_characters_and_map_back() {
        let a = account();
        let month = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        let ids: Vec<String> = (0..12).map(|i| a.session_id(month, i)).collect();
        assert!(ids[0].starts_with('/') && ids[1].contains("//"));
        assert!(ids[2].starts_with('/') && ids[2].contains("//") && ids[2].contains('+'));
        assert!(ids.iter().all(|id| id.ends_with("==")));
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(a.parse_session_id(id), Some((month, i as u32)), "{id}");
        }
        assert_eq!(a.parse_session_id("/ab//c+d=="), None);
    }

    #[test]
    fn rejoins_repeat_the_participant_with_a_later_join() {
        let a = account();
        let month = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        let slot = (0..12)
            .map(|i| a.slot(month, i))
            .find(|s| a.join_count(s) >= 4)
            .expect("a session with a rejoin");
        let users = a.users(&slot, false);
        assert_eq!(users[2].id, users[3].id);
        assert!(users[3].join_time > users[2].join_time);
        assert!(users[2].leave_time < Some(users[3].join_time.clone()));
    }
}
