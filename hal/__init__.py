"""Hardware abstraction layer.

One module per device kind. Each kind is a small ``Protocol`` with interchangeable backends
(simulated, and real ones for a Raspberry Pi) chosen by name from the station config, in the
spirit of gpiozero's pin factories. The station core never imports a backend directly:
:mod:`hal.board` builds the devices a config names.
"""
