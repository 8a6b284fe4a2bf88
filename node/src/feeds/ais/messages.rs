//! Decoded AIS messages. Fields keep the raw integer units of the air interface (the units
//! gpsd's daemon prints with `"scaled":false`); accessor methods give scaled values and map
//! the "not available" sentinels to `None`.

use super::bits::AisText;
use super::tagblock::TagBlock;

/// Latitude "not available" (91°) in 1/10000 minute.
pub const LAT_NOT_AVAILABLE: i32 = 91 * 600_000;
/// Longitude "not available" (181°) in 1/10000 minute.
pub const LON_NOT_AVAILABLE: i32 = 181 * 600_000;
/// Speed "not available" in 1/10 knot.
pub const SPEED_NOT_AVAILABLE: u16 = 1023;
/// Course "not available" in 1/10 degree.
pub const COURSE_NOT_AVAILABLE: u16 = 3600;
/// Heading "not available".
pub const HEADING_NOT_AVAILABLE: u16 = 511;

/// One decoded AIS message with what the sentence carried about its reception.
#[derive(Debug, Clone, PartialEq)]
pub struct AisMessage {
    /// The message content.
    pub report: Report,
    /// Radio channel of the completing sentence (`'A'`, `'B'`, `'1'`, ...), if it named one.
    pub channel: Option<char>,
    /// True for `!xxVDO` (own-ship) sentences.
    pub own_ship: bool,
    /// Tag block of the message's first sentence, when it had one. Boxed: most feeds send
    /// none, and this keeps the message small.
    pub tag_block: Option<Box<TagBlock>>,
}

/// The content of an AIS message, by message type.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// Types 1, 2, 3: class A position report.
    PositionA(PositionReportA),
    /// Types 4 and 11: base station report / UTC date response.
    BaseStation(BaseStationReport),
    /// Type 5: class A static and voyage data.
    StaticVoyage(StaticVoyageData),
    /// Types 6 and 8 whose application payload is not decoded: header only.
    Binary(BinaryHeader),
    /// Type 8, DAC 200 FID 10: inland ship static and voyage data.
    InlandStatic(InlandStaticData),
    /// Type 9: SAR aircraft position report.
    SarAircraft(SarAircraftReport),
    /// Type 17: DGNSS broadcast (reference station position only).
    GnssBroadcast(GnssBroadcast),
    /// Type 18: class B position report.
    PositionB(PositionReportB),
    /// Type 19: extended class B position report.
    PositionBExtended(ExtendedPositionReportB),
    /// Type 21: aid-to-navigation report.
    AidToNavigation(AidToNavigationReport),
    /// Type 23: group assignment command.
    GroupAssignment(GroupAssignment),
    /// Type 24: class B static data, parts A and B merged (or one part in split mode).
    StaticDataB(StaticDataReport),
    /// Type 27: long-range broadcast.
    LongRange(LongRangeReport),
    /// Any other type: only the common header is decoded, for counting.
    Other(MessageHeader),
}

/// The three fields every AIS message starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// Message type, 0..=63.
    pub msg_type: u8,
    /// Repeat indicator, 0..=3.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
}

/// Types 1, 2, 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionReportA {
    /// 1, 2 or 3.
    pub msg_type: u8,
    /// Repeat indicator.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// Navigation status, 0..=15 (15 = not defined).
    pub status: u8,
    /// Raw rate of turn: -128 not available, ±127 turning fast, else 4.733·√(°/min).
    pub turn: i8,
    /// Speed over ground in 1/10 knot; 1023 not available, 1022 means ≥ 102.2 knots.
    pub speed: u16,
    /// Position accuracy flag (true: better than 10 m).
    pub accuracy: bool,
    /// Longitude in 1/10000 minute; 181° not available.
    pub lon: i32,
    /// Latitude in 1/10000 minute; 91° not available.
    pub lat: i32,
    /// Course over ground in 1/10 degree; 3600 not available.
    pub course: u16,
    /// True heading in degrees; 511 not available.
    pub heading: u16,
    /// UTC second of the fix; 60..=63 mean unavailable / manual / estimated / inoperative.
    pub second: u8,
    /// Special manoeuvre indicator.
    pub maneuver: u8,
    /// RAIM flag.
    pub raim: bool,
    /// Radio (communication) state, 19 bits.
    pub radio: u32,
}

/// Types 4 and 11.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaseStationReport {
    /// 4 or 11.
    pub msg_type: u8,
    /// Repeat indicator.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// UTC year, 0 not available.
    pub year: u16,
    /// UTC month, 0 not available.
    pub month: u8,
    /// UTC day, 0 not available.
    pub day: u8,
    /// UTC hour, 24 not available.
    pub hour: u8,
    /// UTC minute, 60 not available.
    pub minute: u8,
    /// UTC second, 60 not available.
    pub second: u8,
    /// Position accuracy flag.
    pub accuracy: bool,
    /// Longitude in 1/10000 minute.
    pub lon: i32,
    /// Latitude in 1/10000 minute.
    pub lat: i32,
    /// Type of position-fixing device.
    pub epfd: u8,
    /// RAIM flag.
    pub raim: bool,
    /// Radio state, 19 bits.
    pub radio: u32,
}

/// Type 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticVoyageData {
    /// Repeat indicator.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// AIS version indicator.
    pub ais_version: u8,
    /// IMO number, 0 not available.
    pub imo: u32,
    /// Call sign.
    pub callsign: AisText<7>,
    /// Vessel name.
    pub shipname: AisText<20>,
    /// Ship and cargo type, 0..=99 defined.
    pub shiptype: u8,
    /// Metres from the reference point to the bow.
    pub to_bow: u16,
    /// Metres to the stern.
    pub to_stern: u16,
    /// Metres to port.
    pub to_port: u8,
    /// Metres to starboard.
    pub to_starboard: u8,
    /// Type of position-fixing device.
    pub epfd: u8,
    /// ETA month (0 not available).
    pub month: u8,
    /// ETA day (0 not available).
    pub day: u8,
    /// ETA hour (24 not available).
    pub hour: u8,
    /// ETA minute (60 not available).
    pub minute: u8,
    /// Maximum present static draught in 1/10 metre.
    pub draught: u8,
    /// Destination.
    pub destination: AisText<20>,
    /// Data terminal equipment ready flag (true: not available).
    pub dte: bool,
}

/// Header of a type 6 (addressed) or type 8 (broadcast) binary message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BinaryHeader {
    /// 6 or 8.
    pub msg_type: u8,
    /// Repeat indicator.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// Type 6 only: sequence number.
    pub seqno: Option<u8>,
    /// Type 6 only: destination MMSI.
    pub dest_mmsi: Option<u32>,
    /// Type 6 only: retransmit flag.
    pub retransmit: Option<bool>,
    /// Designated area code.
    pub dac: u16,
    /// Function identifier.
    pub fid: u8,
    /// Bits of application data after the header.
    pub bitcount: u16,
}

/// Type 8, DAC 200, FID 10: inland ship static and voyage data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InlandStaticData {
    /// Repeat indicator.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// European vessel identification number.
    pub vin: AisText<8>,
    /// Length in 1/10 metre.
    pub length: u16,
    /// Beam in 1/10 metre.
    pub beam: u16,
    /// ERI ship or combination type code.
    pub shiptype: u16,
    /// Hazardous cargo (number of blue cones), 5 unknown.
    pub hazard: u8,
    /// Draught in 1/100 metre.
    pub draught: u16,
    /// Loaded/unloaded: 0 n/a, 1 unloaded, 2 loaded.
    pub loaded: u8,
    /// Speed quality flag.
    pub speed_q: bool,
    /// Course quality flag.
    pub course_q: bool,
    /// Heading quality flag.
    pub heading_q: bool,
}

/// Type 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SarAircraftReport {
    /// Repeat indicator.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// Altitude in metres; 4095 not available, 4094 means higher.
    pub alt: u16,
    /// Speed over ground in knots; 1023 not available, 1022 means ≥ 1022.
    pub speed: u16,
    /// Position accuracy flag.
    pub accuracy: bool,
    /// Longitude in 1/10000 minute.
    pub lon: i32,
    /// Latitude in 1/10000 minute.
    pub lat: i32,
    /// Course in 1/10 degree.
    pub course: u16,
    /// UTC second.
    pub second: u8,
    /// Regional reserved bits.
    pub regional: u8,
    /// DTE flag.
    pub dte: bool,
    /// Assigned-mode flag.
    pub assigned: bool,
    /// RAIM flag.
    pub raim: bool,
    /// Radio state, 20 bits.
    pub radio: u32,
}

/// Type 17 (the DGNSS correction data itself is not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GnssBroadcast {
    /// Repeat indicator.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// Reference station longitude in 1/10 minute.
    pub lon: i32,
    /// Reference station latitude in 1/10 minute.
    pub lat: i32,
    /// Bits of correction data.
    pub bitcount: u16,
}

/// Type 18.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionReportB {
    /// Repeat indicator.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// Regional reserved bits (8) before the speed.
    pub reserved: u8,
    /// Speed over ground in 1/10 knot; 1023 not available.
    pub speed: u16,
    /// Position accuracy flag.
    pub accuracy: bool,
    /// Longitude in 1/10000 minute.
    pub lon: i32,
    /// Latitude in 1/10000 minute.
    pub lat: i32,
    /// Course over ground in 1/10 degree; 3600 not available.
    pub course: u16,
    /// True heading in degrees; 511 not available.
    pub heading: u16,
    /// UTC second.
    pub second: u8,
    /// Regional reserved bits (2).
    pub regional: u8,
    /// Carrier-sense unit flag.
    pub cs: bool,
    /// Display flag.
    pub display: bool,
    /// DSC flag.
    pub dsc: bool,
    /// Band flag.
    pub band: bool,
    /// Message 22 flag.
    pub msg22: bool,
    /// Assigned-mode flag.
    pub assigned: bool,
    /// RAIM flag.
    pub raim: bool,
    /// Radio state, 20 bits.
    pub radio: u32,
}

/// Type 19.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtendedPositionReportB {
    /// Repeat indicator.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// Regional reserved bits (8).
    pub reserved: u8,
    /// Speed over ground in 1/10 knot.
    pub speed: u16,
    /// Position accuracy flag.
    pub accuracy: bool,
    /// Longitude in 1/10000 minute.
    pub lon: i32,
    /// Latitude in 1/10000 minute.
    pub lat: i32,
    /// Course over ground in 1/10 degree.
    pub course: u16,
    /// True heading in degrees.
    pub heading: u16,
    /// UTC second.
    pub second: u8,
    /// Regional reserved bits (4).
    pub regional: u8,
    /// Vessel name.
    pub shipname: AisText<20>,
    /// Ship and cargo type.
    pub shiptype: u8,
    /// Metres to the bow.
    pub to_bow: u16,
    /// Metres to the stern.
    pub to_stern: u16,
    /// Metres to port.
    pub to_port: u8,
    /// Metres to starboard.
    pub to_starboard: u8,
    /// Type of position-fixing device.
    pub epfd: u8,
    /// RAIM flag.
    pub raim: bool,
    /// DTE flag.
    pub dte: bool,
    /// Assigned-mode flag.
    pub assigned: bool,
}

/// Type 21.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AidToNavigationReport {
    /// Repeat indicator.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// Aid type, 0..=31.
    pub aid_type: u8,
    /// Name, including the name extension when present.
    pub name: AisText<34>,
    /// Position accuracy flag.
    pub accuracy: bool,
    /// Longitude in 1/10000 minute.
    pub lon: i32,
    /// Latitude in 1/10000 minute.
    pub lat: i32,
    /// Metres to the bow.
    pub to_bow: u16,
    /// Metres to the stern.
    pub to_stern: u16,
    /// Metres to port.
    pub to_port: u8,
    /// Metres to starboard.
    pub to_starboard: u8,
    /// Type of position-fixing device.
    pub epfd: u8,
    /// UTC second.
    pub second: u8,
    /// Off-position indicator.
    pub off_position: bool,
    /// Regional reserved bits.
    pub regional: u8,
    /// RAIM flag.
    pub raim: bool,
    /// Virtual aid flag.
    pub virtual_aid: bool,
    /// Assigned-mode flag.
    pub assigned: bool,
}

/// Type 23.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupAssignment {
    /// Repeat indicator.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// North-east corner longitude in 1/10 minute.
    pub ne_lon: i32,
    /// North-east corner latitude in 1/10 minute.
    pub ne_lat: i32,
    /// South-west corner longitude in 1/10 minute.
    pub sw_lon: i32,
    /// South-west corner latitude in 1/10 minute.
    pub sw_lat: i32,
    /// Station type addressed.
    pub stationtype: u8,
    /// Ship and cargo type addressed.
    pub shiptype: u8,
    /// Tx/Rx mode.
    pub txrx: u8,
    /// Reporting interval code.
    pub interval: u8,
    /// Quiet time in minutes.
    pub quiet: u8,
}

/// Which parts of a type 24 message a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type24Part {
    /// Part A only (name); emitted only in split mode.
    A,
    /// Part B only (type, vendor, call sign, dimensions); emitted only in split mode.
    B,
    /// Parts A and B merged: the normal record.
    Both,
}

/// Type 24, parts A and B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticDataReport {
    /// Repeat indicator (of the last part).
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// Which parts are present.
    pub part: Type24Part,
    /// Vessel name (part A).
    pub shipname: AisText<20>,
    /// Ship and cargo type (part B).
    pub shiptype: u8,
    /// Vendor id (part B), read as seven characters the way gpsd does, so that older
    /// transmitters' ids come out whole.
    pub vendorid: AisText<7>,
    /// Unit model code (part B).
    pub model: u8,
    /// Unit serial number (part B).
    pub serial: u32,
    /// Call sign (part B).
    pub callsign: AisText<7>,
    /// Metres to the bow (part B; zero for auxiliary craft).
    pub to_bow: u16,
    /// Metres to the stern.
    pub to_stern: u16,
    /// Metres to port.
    pub to_port: u8,
    /// Metres to starboard.
    pub to_starboard: u8,
    /// Mothership MMSI, for auxiliary craft (MMSI 98xxxxxxx) instead of dimensions.
    pub mothership_mmsi: Option<u32>,
}

/// Type 27.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongRangeReport {
    /// Repeat indicator.
    pub repeat: u8,
    /// Source MMSI.
    pub mmsi: u32,
    /// Position accuracy flag.
    pub accuracy: bool,
    /// RAIM flag.
    pub raim: bool,
    /// Navigation status.
    pub status: u8,
    /// Longitude in 1/10 minute; 181° not available.
    pub lon: i32,
    /// Latitude in 1/10 minute; 91° not available.
    pub lat: i32,
    /// Speed over ground in knots; 63 not available.
    pub speed: u8,
    /// Course over ground in degrees; 511 not available.
    pub course: u16,
    /// GNSS position latency flag (false: current position).
    pub gnss: bool,
}

/// Degrees from 1/10000-minute units, `None` for the 91°/181° sentinels and anything outside
/// the globe.
fn position_1e4_min(lat: i32, lon: i32) -> Option<(f64, f64)> {
    position_scaled(lat, lon, 600_000.0)
}

fn position_scaled(lat: i32, lon: i32, per_degree: f64) -> Option<(f64, f64)> {
    let (lat, lon) = (lat as f64 / per_degree, lon as f64 / per_degree);
    if lat.abs() > 90.0 || lon.abs() > 180.0 {
        return None;
    }
    Some((lat, lon))
}

fn speed_tenths(speed: u16) -> Option<f64> {
    (speed != SPEED_NOT_AVAILABLE).then(|| speed as f64 / 10.0)
}

fn course_tenths(course: u16) -> Option<f64> {
    (course < COURSE_NOT_AVAILABLE).then(|| course as f64 / 10.0)
}

fn heading(h: u16) -> Option<u16> {
    (h < 360).then_some(h)
}

impl Report {
    /// The common header of any message.
    pub fn header(&self) -> MessageHeader {
        let (msg_type, repeat, mmsi) = match self {
            Report::PositionA(m) => (m.msg_type, m.repeat, m.mmsi),
            Report::BaseStation(m) => (m.msg_type, m.repeat, m.mmsi),
            Report::StaticVoyage(m) => (5, m.repeat, m.mmsi),
            Report::Binary(m) => (m.msg_type, m.repeat, m.mmsi),
            Report::InlandStatic(m) => (8, m.repeat, m.mmsi),
            Report::SarAircraft(m) => (9, m.repeat, m.mmsi),
            Report::GnssBroadcast(m) => (17, m.repeat, m.mmsi),
            Report::PositionB(m) => (18, m.repeat, m.mmsi),
            Report::PositionBExtended(m) => (19, m.repeat, m.mmsi),
            Report::AidToNavigation(m) => (21, m.repeat, m.mmsi),
            Report::GroupAssignment(m) => (23, m.repeat, m.mmsi),
            Report::StaticDataB(m) => (24, m.repeat, m.mmsi),
            Report::LongRange(m) => (27, m.repeat, m.mmsi),
            Report::Other(h) => return *h,
        };
        MessageHeader { msg_type, repeat, mmsi }
    }

    /// Message type, 1..=27 for defined types.
    pub fn msg_type(&self) -> u8 {
        self.header().msg_type
    }

    /// Source MMSI.
    pub fn mmsi(&self) -> u32 {
        self.header().mmsi
    }

    /// Reported position as (latitude, longitude) in degrees, `None` when the message has no
    /// position or reports it as not available.
    pub fn position(&self) -> Option<(f64, f64)> {
        match self {
            Report::PositionA(m) => position_1e4_min(m.lat, m.lon),
            Report::BaseStation(m) => position_1e4_min(m.lat, m.lon),
            Report::SarAircraft(m) => position_1e4_min(m.lat, m.lon),
            Report::PositionB(m) => position_1e4_min(m.lat, m.lon),
            Report::PositionBExtended(m) => position_1e4_min(m.lat, m.lon),
            Report::AidToNavigation(m) => position_1e4_min(m.lat, m.lon),
            Report::LongRange(m) => position_scaled(m.lat, m.lon, 600.0),
            Report::GnssBroadcast(m) => position_scaled(m.lat, m.lon, 600.0),
            _ => None,
        }
    }

    /// Speed over ground in knots, where the message has one and it is available.
    pub fn speed_knots(&self) -> Option<f64> {
        match self {
            Report::PositionA(m) => speed_tenths(m.speed),
            Report::PositionB(m) => speed_tenths(m.speed),
            Report::PositionBExtended(m) => speed_tenths(m.speed),
            Report::SarAircraft(m) => (m.speed != 1023).then_some(m.speed as f64),
            Report::LongRange(m) => (m.speed != 63).then_some(m.speed as f64),
            _ => None,
        }
    }

    /// Course over ground in degrees, where available.
    pub fn course_deg(&self) -> Option<f64> {
        match self {
            Report::PositionA(m) => course_tenths(m.course),
            Report::PositionB(m) => course_tenths(m.course),
            Report::PositionBExtended(m) => course_tenths(m.course),
            Report::SarAircraft(m) => course_tenths(m.course),
            Report::LongRange(m) => (m.course < 360).then_some(m.course as f64),
            _ => None,
        }
    }

    /// True heading in degrees, where available.
    pub fn heading_deg(&self) -> Option<u16> {
        match self {
            Report::PositionA(m) => heading(m.heading),
            Report::PositionB(m) => heading(m.heading),
            Report::PositionBExtended(m) => heading(m.heading),
            _ => None,
        }
    }

    /// Vessel name, for the messages that carry one (types 5, 19 and 24 with part A);
    /// `None` when the message has no name or it is empty.
    pub fn shipname(&self) -> Option<&str> {
        let name = match self {
            Report::StaticVoyage(m) => m.shipname.as_str(),
            Report::PositionBExtended(m) => m.shipname.as_str(),
            Report::StaticDataB(m) if m.part != Type24Part::B => m.shipname.as_str(),
            _ => return None,
        };
        (!name.is_empty()).then_some(name)
    }

    /// Call sign (types 5 and 24 with part B), `None` when absent or empty.
    pub fn callsign(&self) -> Option<&str> {
        let cs = match self {
            Report::StaticVoyage(m) => m.callsign.as_str(),
            Report::StaticDataB(m) if m.part != Type24Part::A => m.callsign.as_str(),
            _ => return None,
        };
        (!cs.is_empty()).then_some(cs)
    }
}

impl AisMessage {
    /// A message with no reception metadata.
    pub fn new(report: Report) -> Self {
        AisMessage { report, channel: None, own_ship: false, tag_block: None }
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.report.msg_type()
    }

    /// Source MMSI.
    pub fn mmsi(&self) -> u32 {
        self.report.mmsi()
    }

    /// Repeat indicator.
    pub fn repeat(&self) -> u8 {
        self.report.header().repeat
    }

    /// Position as (latitude, longitude) in degrees; see [`Report::position`].
    pub fn position(&self) -> Option<(f64, f64)> {
        self.report.position()
    }

    /// Speed over ground in knots; see [`Report::speed_knots`].
    pub fn speed_knots(&self) -> Option<f64> {
        self.report.speed_knots()
    }

    /// Course over ground in degrees; see [`Report::course_deg`].
    pub fn course_deg(&self) -> Option<f64> {
        self.report.course_deg()
    }

    /// True heading in degrees; see [`Report::heading_deg`].
    pub fn heading_deg(&self) -> Option<u16> {
        self.report.heading_deg()
    }

    /// Vessel name; see [`Report::shipname`].
    pub fn shipname(&self) -> Option<&str> {
        self.report.shipname()
    }

    /// Call sign; see [`Report::callsign`].
    pub fn callsign(&self) -> Option<&str> {
        self.report.callsign()
    }

    /// Receiving station: the tag block's `s:` field, when there was one.
    pub fn tag_source(&self) -> Option<&str> {
        self.tag_block.as_ref()?.source.as_deref()
    }
}
