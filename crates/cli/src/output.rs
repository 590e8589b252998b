//! Texts from fal's documentation, printed word for word.

/// The message `fal key generate` prints (and `fal serve` on its first start).
pub fn generated_key_message(key_id: &str, key_secret: &str) -> String {
    format!(
        "Generated key id and key secret.\n\
         This is the only time the secret will be visible.\n\
         You will need to generate a new key pair if you lose access to this secret.\n\
         \n\
         FAL_KEY_ID='{key_id}'\n\
         FAL_KEY_SECRET='{key_secret}'\n"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn matches_the_documentation() {
        let m = super::generated_key_message("id", "secret");
        assert_eq!(
            m,
            "Generated key id and key secret.\nThis is the only time the secret will be visible.\n\
             You will need to generate a new key pair if you lose access to this secret.\n\n\
             FAL_KEY_ID='id'\nFAL_KEY_SECRET='secret'\n"
        );
    }
}
