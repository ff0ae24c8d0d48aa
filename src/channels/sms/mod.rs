//! SMS gateways: one delivery per subscriber with a phone number.

mod gateway;
mod twilio;
mod vonage;

pub use gateway::{GatewayMethod, GatewaySuccess, SmsGateway, SmsGatewaySettings, dlr_token};
pub use twilio::{Twilio, TwilioSettings, twilio_signature};
pub use vonage::{Vonage, VonageSettings, vonage_signed};

use super::settings::MAX_SEGMENTS;
use crate::message::{TextFamily, TextLimit};

/// What every SMS provider sends.
const FAMILY: Option<TextFamily> = Some(TextFamily::Sms);

/// The standard limit of an SMS channel.
const STANDARD_LIMIT: TextLimit = TextLimit::SmsSegments { max: MAX_SEGMENTS };
