//! The darkwatch lab.
