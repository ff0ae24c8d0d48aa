//! SMS gateways: one delivery per subscriber with a phone number.

mod gateway;
mod twilio;
mod vonage;

pub use gateway::SmsGatewayChannel;
pub use twilio::{TwilioChannel, twilio_signature};

pub use vonage::VonageChannel;
