"""An event to its thread's next turn: the loop's runtime (:mod:`loop`), who may start or steer a thread
(:mod:`trust`), the dispatcher along its flow (:mod:`dispatch`: the gates; :mod:`ready`: an event made
ready; :mod:`start`: the next turn started) and what it keeps of its decisions (:mod:`decisions`), the
prompt (:mod:`prompts`, :mod:`accounts`, :mod:`gathering`), caps (:mod:`budget`, :mod:`owners`), where a
turn is told back (:mod:`places`), bound threads as people manage them (:mod:`threads`, :mod:`refs`),
and what ends or reopens a thread's work (:mod:`closing`, :mod:`conflicts`, :mod:`open_merge`).

May import: the data, reading and kinds wings.
"""
