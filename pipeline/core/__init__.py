"""Files and figures written whole, the work folder, progress lines, ranks under torchrun, the device,
and the stage keys made from what each setting affects."""
