import QtQuick
import QtQuick.Controls

// The feature's activation histogram (bars of equal width from the first to the last edge),
// with this graph's activation marked by a vertical line and its bin highlighted.
Item {
    id: histogram

    required property InspectorColors colors
    property var counts: [] // ints, one per bin
    property var edges: [] // bins + 1
    property int maxCount: 0
    property int markerBin: -1
    property real markerFraction: -1 // in [0, 1]; < 0 for no marker

    implicitHeight: 72

    Item {
        id: plot
        anchors.left: parent.left
        anchors.right: parent.right
        anchors.top: parent.top
        anchors.bottom: axis.top
        anchors.bottomMargin: 2

        Rectangle {
            anchors.fill: parent
            color: histogram.colors.barTrack
            radius: 2
        }
        Repeater {
            model: histogram.counts.length
            delegate: Rectangle {
                required property int index
                readonly property real count: histogram.counts[index]
                objectName: "histogramBar"
                x: index * plot.width / histogram.counts.length
                width: Math.max(1, plot.width / histogram.counts.length - 1)
                height: histogram.maxCount > 0 ? Math.max(count > 0 ? 1 : 0, plot.height * count / histogram.maxCount) : 0
                y: plot.height - height
                color: index === histogram.markerBin ? histogram.colors.activationColor : histogram.colors.bar
                opacity: index === histogram.markerBin ? 1.0 : 0.75
            }
        }
        Rectangle {
            objectName: "histogramMarker"
            visible: histogram.markerFraction >= 0
            x: Math.round(histogram.markerFraction * (plot.width - width))
            width: 2
            height: plot.height
            color: histogram.colors.peak
        }
    }
    Label {
        id: axis
        anchors.left: parent.left
        anchors.bottom: parent.bottom
        text: histogram.edges.length > 0 ? histogram.colors.formatNumber(histogram.edges[0], 2) : ""
        font.pointSize: histogram.colors.smallSize - 1
        color: histogram.colors.textFaint
    }
    Label {
        anchors.right: parent.right
        anchors.bottom: parent.bottom
        text: histogram.edges.length > 0 ? histogram.colors.formatNumber(histogram.edges[histogram.edges.length - 1], 3) : ""
        font.pointSize: histogram.colors.smallSize - 1
        color: histogram.colors.textFaint
    }
}
