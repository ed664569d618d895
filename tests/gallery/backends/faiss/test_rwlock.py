import threading
import time

from reid.gallery.backends.faiss.rwlock import ReadWriteLock


def test_readers_share_writers_exclude():
    lock = ReadWriteLock()
    inside = []
    both_readers_in = threading.Barrier(2, timeout=5)

    def reader():
        with lock.read():
            both_readers_in.wait()  # deadlocks (times out) unless readers overlap
            inside.append("r")

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    assert inside == ["r", "r"]


def test_writer_waits_for_readers_and_blocks_new_ones():
    lock = ReadWriteLock()
    events = []
    reader_in = threading.Event()
    release_reader = threading.Event()

    def first_reader():
        with lock.read():
            reader_in.set()
            release_reader.wait(5)
            events.append("reader 1 out")

    def writer():
        with lock.write():
            events.append("writer")

    def late_reader():
        with lock.read():
            events.append("reader 2")

    threads = [threading.Thread(target=first_reader)]
    threads[0].start()
    reader_in.wait(5)
    threads.append(threading.Thread(target=writer))
    threads[1].start()
    time.sleep(0.1)  # the writer is now waiting
    threads.append(threading.Thread(target=late_reader))
    threads[2].start()
    time.sleep(0.1)
    assert events == []  # the writer waits for reader 1; reader 2 queues behind the writer
    release_reader.set()
    for t in threads:
        t.join(5)
    assert events == ["reader 1 out", "writer", "reader 2"]
