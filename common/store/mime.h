/*
 * Content types of new objects from their names, as `aws s3 cp` and rclone
 * set them: the extension looked up in the system's /etc/mime.types
 * (Debian's media-types), "binary/octet-stream" when it has none.
 */
#ifndef SM_MIME_H
#define SM_MIME_H

/* The content type for an object named `key` (static storage; never NULL). */
const char *sm_mime_type(const char *key);

#endif
