//! Bit layouts of the message types (ITU-R M.1371-5), from a validated payload to a
//! [`Report`]. Minimum lengths follow what real transmitters send (several ship type 5 with
//! 420 or 422 bits, type 1 with 163), as gpsd learned; extra trailing bits are ignored.

use super::bits::{AisText, Bits};
use super::error::AisError;
use super::messages::*;

/// Decodes one complete message.
pub(crate) fn decode_report(bits: &Bits<'_>) -> Result<Report, AisError> {
    let len = bits.len();
    if len < 38 {
        let msg_type = if len >= 6 { bits.u(0, 6) as u8 } else { 0 };
        return Err(AisError::ShortPayload { msg_type, bits: len });
    }
    let msg_type = bits.u(0, 6) as u8;
    let repeat = bits.u(6, 2) as u8;
    let mmsi = bits.u(8, 30);
    let need = |min: usize| {
        if len < min {
            Err(AisError::ShortPayload { msg_type, bits: len })
        } else {
            Ok(())
        }
    };
    let report = match msg_type {
        1..=3 => {
            need(163)?;
            Report::PositionA(PositionReportA {
                msg_type,
                repeat,
                mmsi,
                status: bits.u(38, 4) as u8,
                turn: bits.i(42, 8) as i8,
                speed: bits.u(50, 10) as u16,
                accuracy: bits.flag(60),
                lon: bits.i(61, 28),
                lat: bits.i(89, 27),
                course: bits.u(116, 12) as u16,
                heading: bits.u(128, 9) as u16,
                second: bits.u(137, 6) as u8,
                maneuver: bits.u(143, 2) as u8,
                raim: bits.flag(148),
                // A 163..167-bit report carries a truncated radio field; read what is there.
                radio: if len >= 168 { bits.u(149, 19) } else { bits.u(149, len - 149) },
            })
        }
        4 | 11 => {
            need(168)?;
            Report::BaseStation(BaseStationReport {
                msg_type,
                repeat,
                mmsi,
                year: bits.u(38, 14) as u16,
                month: bits.u(52, 4) as u8,
                day: bits.u(56, 5) as u8,
                hour: bits.u(61, 5) as u8,
                minute: bits.u(66, 6) as u8,
                second: bits.u(72, 6) as u8,
                accuracy: bits.flag(78),
                lon: bits.i(79, 28),
                lat: bits.i(107, 27),
                epfd: bits.u(134, 4) as u8,
                raim: bits.flag(148),
                radio: bits.u(149, 19),
            })
        }
        5 => {
            // Many transmitters send 420 or 422 bits instead of 424; the missing tail is the
            // DTE flag and a spare bit.
            need(420)?;
            Report::StaticVoyage(StaticVoyageData {
                repeat,
                mmsi,
                ais_version: bits.u(38, 2) as u8,
                imo: bits.u(40, 30),
                callsign: bits.text(70, 7),
                shipname: bits.text(112, 20),
                shiptype: bits.u(232, 8) as u8,
                to_bow: bits.u(240, 9) as u16,
                to_stern: bits.u(249, 9) as u16,
                to_port: bits.u(258, 6) as u8,
                to_starboard: bits.u(264, 6) as u8,
                epfd: bits.u(270, 4) as u8,
                month: bits.u(274, 4) as u8,
                day: bits.u(278, 5) as u8,
                hour: bits.u(283, 5) as u8,
                minute: bits.u(288, 6) as u8,
                draught: bits.u(294, 8) as u8,
                destination: bits.text(302, 20),
                dte: len >= 423 && bits.flag(422),
            })
        }
        6 => {
            need(88)?;
            Report::Binary(BinaryHeader {
                msg_type,
                repeat,
                mmsi,
                seqno: Some(bits.u(38, 2) as u8),
                dest_mmsi: Some(bits.u(40, 30)),
                retransmit: Some(bits.flag(70)),
                dac: bits.u(72, 10) as u16,
                fid: bits.u(82, 6) as u8,
                bitcount: (len - 88) as u16,
            })
        }
        8 => {
            need(56)?;
            let dac = bits.u(40, 10) as u16;
            let fid = bits.u(50, 6) as u8;
            match inland_static(bits, repeat, mmsi, dac, fid) {
                Some(inland) => Report::InlandStatic(inland),
                None => Report::Binary(BinaryHeader {
                    msg_type,
                    repeat,
                    mmsi,
                    seqno: None,
                    dest_mmsi: None,
                    retransmit: None,
                    dac,
                    fid,
                    bitcount: (len - 56) as u16,
                }),
            }
        }
        9 => {
            need(168)?;
            Report::SarAircraft(SarAircraftReport {
                repeat,
                mmsi,
                alt: bits.u(38, 12) as u16,
                speed: bits.u(50, 10) as u16,
                accuracy: bits.flag(60),
                lon: bits.i(61, 28),
                lat: bits.i(89, 27),
                course: bits.u(116, 12) as u16,
                second: bits.u(128, 6) as u8,
                regional: bits.u(134, 8) as u8,
                dte: bits.flag(142),
                assigned: bits.flag(146),
                raim: bits.flag(147),
                radio: bits.u(148, 20),
            })
        }
        17 => {
            need(80)?;
            Report::GnssBroadcast(GnssBroadcast {
                repeat,
                mmsi,
                lon: bits.i(40, 18),
                lat: bits.i(58, 17),
                bitcount: (len - 80) as u16,
            })
        }
        18 => {
            need(168)?;
            Report::PositionB(PositionReportB {
                repeat,
                mmsi,
                reserved: bits.u(38, 8) as u8,
                speed: bits.u(46, 10) as u16,
                accuracy: bits.flag(56),
                lon: bits.i(57, 28),
                lat: bits.i(85, 27),
                course: bits.u(112, 12) as u16,
                heading: bits.u(124, 9) as u16,
                second: bits.u(133, 6) as u8,
                regional: bits.u(139, 2) as u8,
                cs: bits.flag(141),
                display: bits.flag(142),
                dsc: bits.flag(143),
                band: bits.flag(144),
                msg22: bits.flag(145),
                assigned: bits.flag(146),
                raim: bits.flag(147),
                radio: bits.u(148, 20),
            })
        }
        19 => {
            need(312)?;
            Report::PositionBExtended(ExtendedPositionReportB {
                repeat,
                mmsi,
                reserved: bits.u(38, 8) as u8,
                speed: bits.u(46, 10) as u16,
                accuracy: bits.flag(56),
                lon: bits.i(57, 28),
                lat: bits.i(85, 27),
                course: bits.u(112, 12) as u16,
                heading: bits.u(124, 9) as u16,
                second: bits.u(133, 6) as u8,
                regional: bits.u(139, 4) as u8,
                shipname: bits.text(143, 20),
                shiptype: bits.u(263, 8) as u8,
                to_bow: bits.u(271, 9) as u16,
                to_stern: bits.u(280, 9) as u16,
                to_port: bits.u(289, 6) as u8,
                to_starboard: bits.u(295, 6) as u8,
                epfd: bits.u(301, 4) as u8,
                raim: bits.flag(305),
                dte: bits.flag(306),
                assigned: bits.flag(307),
            })
        }
        21 => {
            need(272)?;
            Report::AidToNavigation(AidToNavigationReport {
                repeat,
                mmsi,
                aid_type: bits.u(38, 5) as u8,
                name: aid_name(bits),
                accuracy: bits.flag(163),
                lon: bits.i(164, 28),
                lat: bits.i(192, 27),
                to_bow: bits.u(219, 9) as u16,
                to_stern: bits.u(228, 9) as u16,
                to_port: bits.u(237, 6) as u8,
                to_starboard: bits.u(243, 6) as u8,
                epfd: bits.u(249, 4) as u8,
                second: bits.u(253, 6) as u8,
                off_position: bits.flag(259),
                regional: bits.u(260, 8) as u8,
                raim: bits.flag(268),
                virtual_aid: bits.flag(269),
                assigned: bits.flag(270),
            })
        }
        23 => {
            need(160)?;
            Report::GroupAssignment(GroupAssignment {
                repeat,
                mmsi,
                ne_lon: bits.i(40, 18),
                ne_lat: bits.i(58, 17),
                sw_lon: bits.i(75, 18),
                sw_lat: bits.i(93, 17),
                stationtype: bits.u(110, 4) as u8,
                shiptype: bits.u(114, 8) as u8,
                txrx: bits.u(144, 2) as u8,
                interval: bits.u(146, 4) as u8,
                quiet: bits.u(150, 4) as u8,
            })
        }
        24 => decode_type24(bits, repeat, mmsi)?,
        27 => {
            need(96)?;
            Report::LongRange(LongRangeReport {
                repeat,
                mmsi,
                accuracy: bits.flag(38),
                raim: bits.flag(39),
                status: bits.u(40, 4) as u8,
                lon: bits.i(44, 18),
                lat: bits.i(62, 17),
                speed: bits.u(79, 6) as u8,
                course: bits.u(85, 9) as u16,
                gnss: bits.flag(94),
            })
        }
        _ => Report::Other(MessageHeader { msg_type, repeat, mmsi }),
    };
    Ok(report)
}

/// Type 21 name: 20 characters, then (only when those are all used) the name extension
/// that fills the bits after the fixed part.
fn aid_name(bits: &Bits<'_>) -> AisText<34> {
    let mut name = AisText::<34>::default();
    let whole = name.push_sixbit(bits, 43, 20);
    if whole && bits.len() > 272 {
        name.push_sixbit(bits, 272, (bits.len() - 272) / 6);
    }
    name.trim_end();
    name
}

fn decode_type24(bits: &Bits<'_>, repeat: u8, mmsi: u32) -> Result<Report, AisError> {
    let len = bits.len();
    let part = bits.u(38, 2) as u8;
    let short = || AisError::ShortPayload { msg_type: 24, bits: len };
    let mut r = StaticDataReport {
        repeat,
        mmsi,
        part: Type24Part::A,
        shipname: AisText::default(),
        shiptype: 0,
        vendorid: AisText::default(),
        model: 0,
        serial: 0,
        callsign: AisText::default(),
        to_bow: 0,
        to_stern: 0,
        to_port: 0,
        to_starboard: 0,
        mothership_mmsi: None,
    };
    match part {
        0 => {
            if len < 160 {
                return Err(short());
            }
            r.shipname = bits.text(40, 20);
        }
        1 => {
            if len < 168 {
                return Err(short());
            }
            r.part = Type24Part::B;
            r.shiptype = bits.u(40, 8) as u8;
            // ITU-R M.1371-4 carved model and serial out of the old 7-character vendor id;
            // read both ways, as gpsd does, so neither generation of unit loses data.
            r.vendorid = bits.text(48, 7);
            r.model = bits.u(66, 4) as u8;
            r.serial = bits.u(70, 20);
            r.callsign = bits.text(90, 7);
            if mmsi / 10_000_000 == 98 {
                r.mothership_mmsi = Some(bits.u(132, 30));
            } else {
                r.to_bow = bits.u(132, 9) as u16;
                r.to_stern = bits.u(141, 9) as u16;
                r.to_port = bits.u(150, 6) as u8;
                r.to_starboard = bits.u(156, 6) as u8;
            }
        }
        _ => return Err(AisError::BadType24Part { part }),
    }
    Ok(Report::StaticDataB(r))
}

/// DAC 200 FID 10, when the payload has the exact length and plausible content (a broadcast
/// binary message with another layout could share the DAC/FID by mistake).
fn inland_static(bits: &Bits<'_>, repeat: u8, mmsi: u32, dac: u16, fid: u8) -> Option<InlandStaticData> {
    if dac != 200 || fid != 10 || bits.len() != 168 {
        return None;
    }
    let hazard = bits.u(141, 3) as u8;
    if hazard > 5 {
        return None;
    }
    Some(InlandStaticData {
        repeat,
        mmsi,
        vin: bits.text(56, 8),
        length: bits.u(104, 13) as u16,
        beam: bits.u(117, 10) as u16,
        shiptype: bits.u(127, 14) as u16,
        hazard,
        draught: bits.u(144, 11) as u16,
        loaded: bits.u(155, 2) as u8,
        speed_q: bits.flag(157),
        course_q: bits.flag(158),
        heading_q: bits.flag(159),
    })
}
