"""Images as a kind of data: the decoded-image cache, decoding one file, augmentation and TTA views and
prediction over views."""
