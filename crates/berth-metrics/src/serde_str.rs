//! Storage serde for the enums whose wire spelling is their text (`GreaterThanThreshold`,
//! `p99`, `ALARM`, …): serialized as that text, parsed back with `FromStr`.

use crate::aggregate::Statistic;
use crate::alarm::{AlarmState, ComparisonOperator, TreatMissingData};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! as_text {
    ($($t:ty => $text:expr;)*) => {$(
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let text: fn(&$t) -> String = $text;
                s.serialize_str(&text(self))
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
                String::deserialize(d)?
                    .parse()
                    .map_err(serde::de::Error::custom)
            }
        }
    )*};
}

as_text! {
    Statistic => |v| v.to_string();
    AlarmState => |v| v.as_str().to_string();
    ComparisonOperator => |v| v.as_str().to_string();
    TreatMissingData => |v| v.as_str().to_string();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_str_round_trips_the_wire_text() {
        let v = (
            Statistic::Average,
            "p99.9".parse::<Statistic>().unwrap(),
            AlarmState::InsufficientData,
            ComparisonOperator::LessThanThreshold,
            TreatMissingData::NotBreaching,
        );
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(
            text,
            r#"["Average","p99.9","INSUFFICIENT_DATA","LessThanThreshold","notBreaching"]"#
        );
        let back: (
            Statistic,
            Statistic,
            AlarmState,
            ComparisonOperator,
            TreatMissingData,
        ) = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
