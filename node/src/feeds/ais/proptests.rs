//! Property tests: whatever arrives on a feed, the decoder returns a message, nothing, or a
//! typed error, never panics, and stays within its caps; and what an encoder writes, the
//! decoder reads back.

use proptest::prelude::*;

use super::bits::armor_char;
use super::sentence::nmea_checksum;
use super::*;

/// Real sentences (single, multi-part, tag-blocked, trailing metadata) to mutate.
const VALID: &[&str] = &[
    "!AIVDM,1,1,,B,13aDp<PP000IwSlN?Wm@0?wN2<1T,0*29",
    "!AIVDM,2,1,9,B,55R3Vn82=ILTQ3KKS>1<D60Dq@E918U<F222221J1`?164vc03S1CCAD,0*2A",
    "!AIVDM,2,2,9,B,`88888888888880,2*76",
    "!AIVDM,1,1,,A,H3`fMU0PE=@T400000000000000,2*79",
    "!AIVDM,1,1,,A,H3`fMU4TF5C@5B0@3okhp01h1140,0*16",
    "!AIVDM,1,1,,A,B3KLehP0B@LTN6`Vl;rrBE063P06,0*5A",
    "!AIVDM,1,1,,A,K3KLehP0rPTJ10Qr,0*2A",
    "\\s:rORBCOMM104,q:u,c:1418172113,T:2014-12-10 00.41.53*55\\!AIVDM,1,1,,B,13F?Vv700<DJuLEtvep`iToV0<00,0*78",
    "!AIVDM,1,1,,A,15B4FT5000JRP>PE6E68Nbkl0PS5,0*70,b003669794,1272412827",
    "!AIVDM,1,1,,B,E<eNSpRtjkGoqmIsgm`>ekv92?KN9R<Man9UV;cwLhuFLh,4*62",
];

fn push(decoder: &mut AisDecoder, line: &str, now: u64) {
    match decoder.push_line("prop", line, now) {
        Ok(Some(msg)) => {
            // Everything a caller may touch must work too.
            let _ = (msg.msg_type(), msg.mmsi(), msg.position(), msg.shipname());
            let _ = (msg.speed_knots(), msg.course_deg(), msg.heading_deg());
            let mut s = String::new();
            write_gpsd_json(&msg, true, Some("dev"), &mut s);
            write_gpsd_json(&msg, false, None, &mut s);
            let _ = to_gpsd_json(&msg, true);
        }
        Ok(None) => {}
        Err(e) => assert!(AisError::REASONS.contains(&e.reason()), "{e:?}"),
    }
}

/// Wraps a body (`AIVDM,...`) into a sentence with a correct checksum.
fn with_checksum(body: &str) -> String {
    format!("!{body}*{:02X}", nmea_checksum(body.as_bytes()))
}

/// Accumulates bits MSB first and armors them.
#[derive(Default)]
struct BitWriter {
    bits: Vec<u8>,
}

impl BitWriter {
    fn put(&mut self, value: u64, width: usize) -> &mut Self {
        for i in (0..width).rev() {
            self.bits.push(((value >> i) & 1) as u8);
        }
        self
    }

    fn put_i(&mut self, value: i64, width: usize) -> &mut Self {
        self.put(value as u64 & ((1u64 << width) - 1), width)
    }

    fn put_text(&mut self, text: &str, chars: usize) -> &mut Self {
        let mut bytes = text.bytes();
        for _ in 0..chars {
            // ASCII 64..=95 map to 0..=31, 32..=63 to themselves; '@' (0) pads.
            let v = match bytes.next() {
                Some(c @ 64..=95) => c - 64,
                Some(c @ 32..=63) => c,
                _ => 0,
            };
            self.put(v as u64, 6);
        }
        self
    }

    /// Armored payload and fill bits.
    fn armor(&self) -> (String, u8) {
        let fill = (6 - self.bits.len() % 6) % 6;
        let mut bits = self.bits.clone();
        bits.extend(std::iter::repeat_n(0, fill));
        let payload = bits.chunks(6).map(|c| armor_char(c.iter().fold(0, |a, &b| (a << 1) | b)) as char).collect();
        (payload, fill as u8)
    }
}

fn six_bit_text(max: usize) -> impl Strategy<Value = String> {
    // Characters that survive gpsd's rules: no '@', no trailing space.
    proptest::string::string_regex(&format!("[A-Z0-9]([A-Z0-9 /.-]{{0,{}}}[A-Z0-9])?", max - 2)).unwrap()
}

proptest! {
    // No failure files: they would land in the source tree.
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn garbage_lines_never_panic(line in ".{0,300}") {
        let mut d = AisDecoder::default();
        push(&mut d, &line, 0);
    }

    #[test]
    fn garbage_after_a_sentence_head_never_panics(
        head in prop::sample::select(vec!["!AIVDM,", "!AIVDO,", "\\", "\\s:x*00\\!AIVDM,", "!BSVDM,1,1,,A,"]),
        tail in "[ -~]{0,200}",
        checksum in any::<bool>(),
    ) {
        let mut d = AisDecoder::default();
        let line = format!("{head}{tail}");
        push(&mut d, &line, 0);
        if checksum && line.starts_with('!') {
            push(&mut d, &with_checksum(&line[1..]), 0);
        }
    }

    #[test]
    fn truncated_sentences_never_panic(i in 0..VALID.len(), cut in 0usize..200) {
        let s = VALID[i];
        let cut = cut.min(s.len());
        let mut d = AisDecoder::default();
        push(&mut d, &s[..cut], 0);
        // And the truncated sentence with a fixed-up checksum, so the decoder sees it.
        let bang = s.find('!').unwrap();
        if let Some(star) = s[bang..].find('*') {
            let body = &s[bang + 1..bang + star];
            let body = &body[..cut.min(body.len())];
            push(&mut d, &with_checksum(body), 0);
        }
    }

    #[test]
    fn random_payload_bytes_never_panic(
        payload in proptest::collection::vec(any::<u8>(), 0..200),
        fill in 0u8..6,
        ascii in any::<bool>(),
    ) {
        let payload: String = if ascii {
            payload.iter().map(|&b| (b % 95 + 32) as char).filter(|c| *c != ',' && *c != '*').collect()
        } else {
            payload.iter().map(|&b| armor_char(b) as char).collect()
        };
        let mut d = AisDecoder::default();
        push(&mut d, &with_checksum(&format!("AIVDM,1,1,,A,{payload},{fill}")), 0);
        // The same payload split over two fragments.
        let mid = payload.char_indices().nth(payload.chars().count() / 2).map_or(0, |(i, _)| i);
        push(&mut d, &with_checksum(&format!("AIVDM,2,1,3,A,{},0", &payload[..mid])), 0);
        push(&mut d, &with_checksum(&format!("AIVDM,2,2,3,A,{},{fill}", &payload[mid..])), 0);
    }

    #[test]
    fn fragment_storms_stay_within_caps(
        frags in proptest::collection::vec((1u8..=9, 1u8..=9, 0u8..10, any::<bool>(), 0u64..100_000), 1..300),
    ) {
        let config = DecoderConfig { max_pending_groups: 8, type24_cache_size: 4, ..DecoderConfig::default() };
        let mut d = AisDecoder::new(config);
        for (total, number, seq, chan_b, now) in frags {
            let chan = if chan_b { 'B' } else { 'A' };
            let line = with_checksum(&format!("AIVDM,{total},{number},{seq},{chan},55R3Vn82=ILTQ3KK,0"));
            push(&mut d, &line, now);
            prop_assert!(d.pending_groups() <= 8);
            let a = with_checksum(&format!("AIVDM,1,1,,A,H3`fM{}0PE=@T400000000000000,2", armor_char(seq) as char));
            push(&mut d, &a, now);
            prop_assert!(d.cached_type24() <= 4);
        }
    }

    #[test]
    fn position_report_round_trips(
        msg_type in 1u8..=3, repeat in 0u8..4, mmsi in 0u32..(1 << 30),
        status in 0u8..16, turn in any::<i8>(), speed in 0u16..1024, accuracy in any::<bool>(),
        lon in -108_600_000i32..=108_600_000, lat in -54_600_000i32..=54_600_000,
        course in 0u16..4096, heading in 0u16..512, second in 0u8..64, maneuver in 0u8..4,
        raim in any::<bool>(), radio in 0u32..(1 << 19),
    ) {
        let mut w = BitWriter::default();
        w.put(msg_type as u64, 6).put(repeat as u64, 2).put(mmsi as u64, 30)
            .put(status as u64, 4).put_i(turn as i64, 8).put(speed as u64, 10)
            .put(accuracy as u64, 1).put_i(lon as i64, 28).put_i(lat as i64, 27)
            .put(course as u64, 12).put(heading as u64, 9).put(second as u64, 6)
            .put(maneuver as u64, 2).put(0, 3).put(raim as u64, 1).put(radio as u64, 19);
        let (payload, fill) = w.armor();
        let line = with_checksum(&format!("AIVDM,1,1,,A,{payload},{fill}"));
        let msg = AisDecoder::default().push_line("rt", &line, 0).unwrap().unwrap();
        let want = PositionReportA {
            msg_type, repeat, mmsi, status, turn, speed, accuracy, lon, lat, course, heading,
            second, maneuver, raim, radio,
        };
        prop_assert_eq!(msg.report, Report::PositionA(want));
        prop_assert_eq!(msg.channel, Some('A'));
    }

    #[test]
    fn static_voyage_round_trips_over_two_fragments(
        mmsi in 0u32..(1 << 30), imo in 0u32..(1 << 30),
        callsign in six_bit_text(7), shipname in six_bit_text(20), destination in six_bit_text(20),
        shiptype in any::<u8>(), draught in any::<u8>(), split in 1usize..70,
    ) {
        let mut w = BitWriter::default();
        w.put(5, 6).put(0, 2).put(mmsi as u64, 30).put(1, 2).put(imo as u64, 30)
            .put_text(&callsign, 7).put_text(&shipname, 20).put(shiptype as u64, 8)
            .put(10, 9).put(20, 9).put(3, 6).put(4, 6).put(1, 4)
            .put(6, 4).put(15, 5).put(12, 5).put(30, 6).put(draught as u64, 8)
            .put_text(&destination, 20).put(1, 1).put(0, 1);
        let (payload, fill) = w.armor();
        prop_assert_eq!(payload.len(), 71);
        let (a, b) = payload.split_at(split);
        let mut d = AisDecoder::default();
        prop_assert_eq!(d.push_line("rt", &with_checksum(&format!("AIVDM,2,1,7,B,{a},0")), 5), Ok(None));
        let msg = d.push_line("rt", &with_checksum(&format!("AIVDM,2,2,7,B,{b},{fill}")), 9)
            .unwrap().unwrap();
        let Report::StaticVoyage(m) = msg.report else { panic!("not type 5: {msg:?}") };
        prop_assert_eq!(m.mmsi, mmsi);
        prop_assert_eq!(m.imo, imo);
        prop_assert_eq!(m.callsign.as_str(), callsign.as_str());
        prop_assert_eq!(m.shipname.as_str(), shipname.as_str());
        prop_assert_eq!(m.destination.as_str(), destination.as_str());
        prop_assert_eq!((m.shiptype, m.draught, m.to_bow, m.to_starboard), (shiptype, draught, 10, 4));
        prop_assert!(m.dte);
    }
}

#[test]
fn fragments_assemble_per_source_and_time_out() {
    let p1 = "!AIVDM,2,1,9,B,55R3Vn82=ILTQ3KKS>1<D60Dq@E918U<F222221J1`?164vc03S1CCAD,0*2A";
    let p2 = "!AIVDM,2,2,9,B,`88888888888880,2*76";
    let mut d = AisDecoder::default();
    assert_eq!(d.push_line("a", p1, 0), Ok(None));
    // Another listener's second half does not complete listener a's message.
    assert_eq!(d.push_line("b", p2, 1).unwrap_err().reason(), "orphan_fragment");
    let msg = d.push_line("a", p2, 2).unwrap().unwrap();
    assert_eq!(msg.msg_type(), 5);
    assert_eq!(msg.shipname(), Some("SEA ENTERPRISE"));
    assert_eq!(msg.callsign(), Some("HP6683"));

    let timeout = d.config().fragment_timeout_ms;
    assert_eq!(d.push_line("a", p1, 100), Ok(None));
    let err = d.push_line("a", p2, 101 + timeout).unwrap_err();
    assert_eq!(err.reason(), "fragment_timeout");
    assert_eq!(d.pending_groups(), 0);

    assert_eq!(d.push_line("a", p1, 0), Ok(None));
    assert_eq!(d.expire(timeout + 1), 1);
    assert_eq!(d.counters().groups_expired, 1);
}

#[test]
fn type24_parts_merge_like_gpsd() {
    let a = "!AIVDM,1,1,,A,H3`fMU0PE=@T400000000000000,2*79";
    let b = "!AIVDM,1,1,,A,H3`fMU4TF5C@5B0@3okhp01h1140,0*16";
    let mut d = AisDecoder::default();
    // Part B alone is dropped; part A is held; B then yields the merged record.
    assert_eq!(d.push_line("x", b, 0), Ok(None));
    assert_eq!(d.push_line("x", a, 1), Ok(None));
    let msg = d.push_line("x", b, 2).unwrap().unwrap();
    let json = to_gpsd_json(&msg, false);
    let want: serde_json::Value = serde_json::from_str(
        r#"{"class":"AIS","type":24,"repeat":0,"mmsi":244030868,"scaled":false,"shipname":"HESTIA","shiptype":36,"shiptype_text":"Sailing","vendorid":"VESPER","model":4,"serial":21632,"callsign":"PC7308","to_bow":14,"to_stern":1,"to_port":1,"to_starboard":4}"#,
    )
    .unwrap();
    assert_eq!(json, want);
    // A repeated part B does not match the consumed part A again.
    assert_eq!(d.push_line("x", b, 3), Ok(None));
    assert_eq!(d.counters().type24_orphan_part_b, 2);
}

#[test]
fn non_ais_lines_are_counted_not_errors() {
    let mut d = AisDecoder::default();
    for line in ["$GPGGA,213950.00,5250.53669,N,00542.34920,E,1,09,1.03,-6.0,M,45.8,M,,*7B", "", "# note", "!AIALR,1"] {
        assert_eq!(d.push_line("x", line, 0), Ok(None));
    }
    assert_eq!(d.counters().non_ais, 4);
    let long = format!("!AIVDM,{}", "1".repeat(2000));
    assert_eq!(d.push_line("x", &long, 0).unwrap_err().reason(), "too_long");
}

#[test]
fn scaled_json_like_gpsdecode() {
    let line = "!AIVDM,1,1,,B,13aDp<PP000IwSlN?Wm@0?wN2<1T,0*29";
    let msg = AisDecoder::default().push_line("x", line, 0).unwrap().unwrap();
    let mut text = String::new();
    write_gpsd_json(&msg, true, Some("stdin"), &mut text);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v,
        to_gpsd_json(&msg, true)
            .as_object()
            .map(|o| {
                let mut o = o.clone();
                o.insert("device".into(), "stdin".into());
                serde_json::Value::Object(o)
            })
            .unwrap()
    );
    assert!(text.starts_with("{\"class\":\"AIS\",\"device\":\"stdin\",\"type\":1,"));
    assert_eq!(v["turn"], "nan");
    assert_eq!(v["scaled"], true);
    let (lat, lon) = msg.position().unwrap();
    assert!((v["lat"].as_f64().unwrap() - lat).abs() < 1e-7);
    assert!((v["lon"].as_f64().unwrap() - lon).abs() < 1e-7);
}

#[test]
fn any_talker_and_own_ship_sentences() {
    let body = "BSVDO,1,1,,,13aDp<PP000IwSlN?Wm@0?wN2<1T,0";
    let msg = AisDecoder::default().push_line("x", &with_checksum(body), 0).unwrap().unwrap();
    assert!(msg.own_ship);
    assert_eq!(msg.channel, None);
    assert_eq!(msg.mmsi(), 244660274);
    assert_eq!(msg.heading_deg(), None);
    let (lat, lon) = msg.position().unwrap();
    assert!((lat - 31713237.0 / 600_000.0).abs() < 1e-9);
    assert!((lon - 3406970.0 / 600_000.0).abs() < 1e-9);
    assert_eq!(msg.speed_knots(), Some(0.0));
}
